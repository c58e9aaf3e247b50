from pathlib import Path

import pytest

from govtune.experiments.config import StudyConfig, build_config, load_config, parse_overrides

ROOT = Path(__file__).resolve().parents[2]


def test_overrides_are_typed_by_the_schema():
    c = build_config({}, parse_overrides(["methods=lora,hybrid", "seeds=0,1", "shots=0,8,32", "epochs=2",
                                          "lr=1e-3", "eval_limit=null", "robustness=false", "adapter.r=8"]))
    assert c.methods == ["lora", "hybrid"] and c.seeds == [0, 1] and c.shots == [0, 8, 32]
    assert c.epochs == 2 and c.lr == 1e-3 and c.eval_limit is None and c.robustness is False
    assert c.adapter == {"r": 8}


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
])
def test_bad_input_names_the_problem(items, message):
    with pytest.raises(ValueError, match=message):
        build_config({}, parse_overrides(items))


def test_unknown_key_in_the_file_is_named_with_the_closest_valid_one(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: tiny-llama\nseed: [0]\n")
    with pytest.raises(ValueError, match=r"unknown config key 'seed' in .*c\.yaml \(did you mean 'seeds'\?\)"):
        load_config(path)
    with pytest.raises(FileNotFoundError, match="start from configs/demo.yaml"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(path)


def test_settings_hash_covers_settings_not_grid_axes():
    a = StudyConfig(methods=["lora"], seeds=[0])
    assert a.settings_hash() == StudyConfig(methods=["lora", "hybrid"], seeds=[0, 1, 2]).settings_hash()
    assert a.settings_hash() != StudyConfig(methods=["lora"], seeds=[0], epochs=5).settings_hash()


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


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load_and_build_valid_adapter_configs(path):
    from govtune.adapters import AdapterConfig

    c = load_config(path)
    for method in c.methods:
        AdapterConfig(**c.adapter_options(method))
