from pathlib import Path

import pytest

from govtune.study.config import StudyConfig

from govtune.study.loading import build_config, load_config, parse_overrides

ROOT = Path(__file__).resolve().parents[2]


def test_overrides_are_typed_by_the_schema():
    c = build_config({}, parse_overrides(["methods=lora,hybrid", "seeds=0,1", "shots=0,8,32", "epochs=2",
                                          "lr=1e-3", "eval_limit=null", "robustness=false", "adapter.r=8"]))
    assert c.methods == ["lora", "hybrid"] and c.seeds == [0, 1] and c.shots == [0, 8, 32]
    assert c.epochs == 2 and c.lr == 1e-3 and c.eval_limit is None and c.robustness is False
    assert c.adapter == {"r": 8}
    assert build_config({}, parse_overrides(["methods=[lora, boft]"])).methods == ["lora", "boft"]  # YAML lists too


def test_nested_override_updates_one_option_and_keeps_the_rest():
    c = build_config({"adapter": {"r": 16, "alpha": 32}}, parse_overrides(["adapter.r=8"]))
    assert c.adapter == {"r": 8, "alpha": 32}


@pytest.mark.parametrize("items, message", [
    (["metods=lora"], "unknown config key 'metods'.*did you mean 'methods'"),
    (["eval_limt=3"], "did you mean 'eval_limit'"),
    (["methods=lora,hybird"], "unknown method 'hybird'.*did you mean 'hybrid'"),
    (["curation=c3"], "unknown curation stage 'c3'"),
    (["tasks=xnli,flore"], "unknown task 'flore'.*did you mean 'flores'"),
    (["epochs=two"], "'epochs' expects int, got 'two'"),
    (["seeds=0,x"], "'seeds' expects list\\[int\\]"),
    (["seeds=0.5"], "'seeds' expects list\\[int\\]"),
    (["epochs"], "not key=value"),
    (["lr.x=1"], "'lr' has no sub-keys"),
    (["xnli_pool_rows=0,1300"], "overlaps xnli_eval_rows"),
    (["shots=-1"], "shots must be"),
    (["quantize=int3"], "quantize: unknown scheme 'int3'; use one of int8, int4, nf4"),
    (["quantize=nf4", "methods=lora,full"], "'full' trains every weight.*quantize: nf4"),
])
def test_bad_input_names_the_problem(items, message):
    with pytest.raises(ValueError, match=message):
        build_config({}, parse_overrides(items))


def test_unknown_key_in_the_file_is_named_with_the_closest_valid_one(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: tiny-llama\nseed: [0]\n")
    with pytest.raises(ValueError, match=r"unknown config key 'seed' in .*c\.yaml \(did you mean 'seeds'\?\)"):
        load_config(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml' is neither a file nor a built-in config; built-in configs: demo, "):
        load_config(tmp_path / "missing.yaml")
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(path)


def test_settings_hash_covers_settings_not_grid_axes():
    a = StudyConfig(methods=["lora"], seeds=[0])
    assert a.settings_hash() == StudyConfig(methods=["lora", "hybrid"], seeds=[0, 1, 2]).settings_hash()
    assert a.settings_hash() != StudyConfig(methods=["lora"], seeds=[0], epochs=5).settings_hash()


def test_quantize_is_typed_and_hashed_only_when_set():
    c = build_config({}, parse_overrides(["quantize=int8"]))
    assert c.quantize == "int8"
    assert "quantize" not in StudyConfig().settings()  # studies run before the key existed still resume
    assert c.settings_hash() != StudyConfig().settings_hash()


def test_variants_and_per_method_learning_rates():
    c = build_config({"methods": ["hybrid", "hybrid_fixed25"], "adapter": {"r": 8},
                      "variants": {"hybrid_fixed25": {"method": "hybrid", "lam_schedule": "fixed",
                                                      "lam_fixed": 0.25}},
                      "lr_per_method": {"hybrid": 1e-3}})
    assert c.adapter_options("hybrid_fixed25") == {"r": 8, "method": "hybrid", "lam_schedule": "fixed",
                                                   "lam_fixed": 0.25}
    assert c.lr_for("hybrid_fixed25") == 1e-3 and c.lr_for("hybrid") == 1e-3
    with pytest.raises(ValueError, match="variant 'bad' needs `method:`"):
        build_config({"methods": ["bad"], "variants": {"bad": {"lam_fixed": 0.5}}})


SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))
PAPER = sorted((ROOT / "configs" / "paper").glob("*.yaml"))


def test_every_shipped_config_is_tested():
    assert len(PAPER) == 7
    cpu = {"demo", "cpu_study", "cpu_lam_ablation", "cpu_curation_ablation", "cpu_scaling", "cpu_method_study"}
    assert {p.stem for p in SHIPPED} - {p.stem for p in PAPER} == cpu | {"cpu_crosslingual"}
    for name in sorted(cpu):  # the CPU configs run the multilingual offline model against its base
        c = load_config(ROOT / "configs" / f"{name}.yaml")
        assert c.model == "gemma3-270m" and c.languages == ["en", "zh", "hi"]
    # the cross-lingual study: SIB-200 in all its languages, tuned on four of them
    c = load_config(ROOT / "configs" / "cpu_crosslingual.yaml")
    options = c.task_options["sib200"]
    assert c.model == "gemma3-270m" and c.tasks == ["sib200"] and options["languages"] == ["all"]
    assert options["train_languages"] == ["en", "zh", "hi", "sw"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
def test_shipped_config_builds_its_grid(path):
    from govtune.adapters import AdapterConfig
    from govtune.study.cell import grid_cells
    from govtune.study.config import BASELINES

    c = load_config(path)
    assert isinstance(c, StudyConfig) and c.name == path.stem
    cells = grid_cells(c)
    trained = [k for k in c.shots if k > 0]
    assert len(cells) == (0 in c.shots) + (c.incontext_shots > 0) + len(c.curation) * len(trained) * len(c.methods) * len(c.seeds)
    assert len({cell.run_id for cell in cells}) == len(cells)
    for cell in cells:
        if cell.method in BASELINES:
            assert cell.shots == 0
            continue
        options = c.adapter_options(cell.method)
        adapter = AdapterConfig(**options)
        assert adapter.method == options["method"] and cell.curation in c.curation and cell.seed in c.seeds


# The settings each paper config states for its table or figure, beyond the shared ones.
PAPER_SETTINGS = {
    "xnli_main": {"tasks": ["xnli"], "shots": [32], "curation": ["c2"], "robustness": False},
    "flores": {"tasks": ["xnli", "flores"], "flores_pairs": ["en-zh", "en-es"], "flores_train_pairs": 32},
    "robustness": {"tasks": ["xnli"], "robustness": True},
    "curation_ablation": {"curation": ["c0", "c1", "c2", "c1_no_langid", "c1_no_dedup", "c2_no_quality",
                                       "c2_no_ppl"], "shots": [32]},
    "fewshot_scaling": {"shots": [0, 8, 32, 128]},
    "footprint": {"methods": ["full", "lora", "boft", "lora_ga", "unitary", "hybrid"], "seeds": [0]},
    "lam_ablation": {"shots": [32]},
}


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_configs_name_the_papers_settings(path):
    """r = 16, alpha = 32 and m = 3 butterfly factors (stated in every file, and what the adapters get),
    BloomZ-7B1, EN/ZH/HI, three seeds unless the file says one is enough, and each table's own axes."""
    import yaml

    from govtune.adapters import AdapterConfig

    raw = yaml.safe_load(path.read_text())
    assert raw["adapter"] == {"r": 16, "alpha": 32, "boft_factors": 3}
    c = load_config(path)
    for method in c.methods:
        adapter = AdapterConfig(**c.adapter_options(method))
        assert (adapter.r, adapter.alpha, adapter.boft_factors) == (16, 32, 3)
    assert c.model == "bigscience/bloomz-7b1" and c.languages == ["en", "zh", "hi"]
    assert c.seeds == ([0] if path.stem == "footprint" else [0, 1, 2])
    assert PAPER_SETTINGS.keys() == {p.stem for p in PAPER}
    for key, value in PAPER_SETTINGS[path.stem].items():
        assert getattr(c, key) == value, key


def test_lam_ablation_names_the_companion_papers_schedules():
    c = load_config(ROOT / "configs" / "paper" / "lam_ablation.yaml")
    options = {m: c.adapter_options(m) for m in c.methods}
    assert {m: (o["method"], o.get("lam_schedule"), o.get("lam_fixed")) for m, o in options.items()
            if o.get("lam_schedule") == "fixed"} == {
        "hybrid_fixed25": ("hybrid", "fixed", 0.25), "hybrid_fixed50": ("hybrid", "fixed", 0.5),
        "hybrid_fixed75": ("hybrid", "fixed", 0.75)}
    assert options["hybrid_anneal"]["lam_anneal"] == [0.75, 0.25]
    assert options["hybrid_raw"]["lam_ema"] == 0.0 and {"lora", "boft", "hybrid"} <= set(c.methods)


def test_train_config_carries_every_study_setting_of_the_same_name():
    import dataclasses

    from govtune.training import TrainConfig

    c = build_config({"epochs": 2, "lr": 1e-3, "lr_per_method": {"hybrid": 5e-4}, "batch_size": 4,
                      "grad_accum": 2, "weight_decay": 0.01, "warmup_ratio": 0.2, "schedule": "cosine",
                      "max_grad_norm": None, "max_length": 64, "mixed_precision": "no", "keep_checkpoints": False})
    tc = c.train_config("hybrid", seed=7, progress=False)
    shared = [f.name for f in dataclasses.fields(TrainConfig) if hasattr(c, f.name)]
    assert sorted(shared) == sorted(["epochs", "lr", "batch_size", "grad_accum", "weight_decay", "warmup_ratio",
                                     "schedule", "max_grad_norm", "max_length", "mixed_precision", "lr_branches"])
    per_method = ("lr", "lr_branches")  # the method's own (below and in test_lr_branches_reach_hybrid_methods_only)
    assert {k: getattr(tc, k) for k in shared if k not in per_method} == \
        {k: getattr(c, k) for k in shared if k not in per_method}
    assert tc.lr == 5e-4 and c.train_config("lora", 7).lr == 1e-3  # the method's rate
    assert (tc.seed, tc.checkpoints, tc.resume, tc.progress) == (7, False, True, False)
    assert tc.timing_warmup_steps == TrainConfig().timing_warmup_steps


def test_lr_branches_reach_hybrid_methods_only():
    c = build_config({"methods": ["lora", "hybrid", "hybrid_fixed"], "lr": 5e-4,
                      "variants": {"hybrid_fixed": {"method": "hybrid", "lam_schedule": "fixed"}}},
                     parse_overrides(["lr_branches.lora_ga=2e-5", "lr_branches.boft=1e-3"]))
    assert c.lr_branches == {"lora_ga": 2e-5, "boft": 1e-3}  # YAML reads 2e-5 as a string: typed here
    assert c.train_config("hybrid", 0).lr_branches == {"lora_ga": 2e-5, "boft": 1e-3}
    assert c.train_config("hybrid_fixed", 0).lr_branches == {"lora_ga": 2e-5, "boft": 1e-3}
    assert c.train_config("lora", 0).lr_branches is None
    # added after studies existed: at its default it leaves the settings (and the hash) as they were
    assert "lr_branches" not in StudyConfig().settings() and "lr_branches" in c.settings()


@pytest.mark.parametrize("branches,message", [
    ({"lora-ga": 1e-5},
     r"unknown hybrid branch 'lora-ga' \(did you mean 'lora_ga'\?\); the branches are lora_ga, boft"),
    ({"bofft": 1e-5}, r"did you mean 'boft'"),
    ({"phi": 0.1}, "its own Adam.*mixer_lr"),
    ({"boft": 0}, r"lr_branches.boft must be a finite learning rate > 0, got 0"),
    ({"lora_ga": -1e-5}, r"lr_branches.lora_ga must be .* > 0, got -1e-05"),
    ({"lora_ga": "fast"}, r"lr_branches.lora_ga must be a learning rate > 0, got 'fast'"),
])
def test_bad_lr_branches_name_the_key_and_value(branches, message):
    with pytest.raises(ValueError, match=message):
        build_config({"lr_branches": branches})
