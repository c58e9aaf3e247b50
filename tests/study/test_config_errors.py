"""Every kind of bad config value fails `govtune run` before anything runs: exit 2, one message naming the
key and the value and saying what to write instead, as the last thing printed, and no study directory."""

import gc
from pathlib import Path

import pytest

from govtune.cli import main
from govtune.study.loading import load_config

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "configs" / "demo.yaml")

# (overrides, what the message must say: the key or value, and the fix)
BAD = [
    (["adapter.lam_schedule=learnd"], r"adapter: unknown lam_schedule 'learnd' \(did you mean 'learned'\?\)"),
    (["adapter.ga_direction=arb2"], r"adapter: unknown ga_direction 'arb2' \(did you mean 'arb2r'\?\)"),
    (["adapter.rr=8"], r"adapter: unknown adapter option 'rr' \(did you mean 'r'\?\)"),
    (["adapter.r=0"], r"adapter: r must be a positive integer, got 0"),
    (["adapter.lam_min=0.7"], r"adapter: lam_min must be in \[0, 0.5\), got 0.7"),
    (["variants.h2={method: hybrid, lam_schedul: fixed}"],
     r"variants.h2: unknown adapter option 'lam_schedul' \(did you mean 'lam_schedule'\?\)"),
    (["variants.h2={method: hybrid, lam_fixed: 2}"], r"variants.h2: lam_fixed must be in \[0, 1\], got 2"),
    (["variants.h2={method: hybird}"], r"variant 'h2' needs `method:`.*got 'hybird' \(did you mean 'hybrid'\?\)"),
    (["lr_per_method.lorra=0.0001"], r"lr_per_method: unknown method 'lorra' \(did you mean 'lora'\?\)"),
    (["lr_per_method.lora=nan"], r"lr_per_method.lora must be a finite number > 0, got nan"),
    (["lr_per_method.lora=-1e-4"], r"lr_per_method.lora must be a finite number > 0, got -0.0001"),
    (["lr_per_method.lora=fast"], r"config key 'lr_per_method' expects dict\[str, float\], got \{.*'lora': 'fast'\}"),
    (["lr_branches.lora_gaa=1e-5"], r"lr_branches: unknown hybrid branch 'lora_gaa' \(did you mean 'lora_ga'\?\)"),
    (["lr=nan"], r"config key 'lr' must be a finite number, got 'nan'; e.g. lr=0.0002"),
    (["lr=inf"], r"config key 'lr' must be a finite number, got 'inf'"),
    (["lr=0"], r"lr must be a finite number > 0, got 0.0; e.g. lr=0.0002"),
    (["warmup_ratio=nan"], r"config key 'warmup_ratio' must be a finite number, got 'nan'"),
    (["max_grad_norm=0"], r"max_grad_norm must be > 0, or null for no clipping, got 0.0"),
    (["weight_decay=-0.1"], r"weight_decay must be >= 0, got -0.1"),
    (["schedule=cosin"], r"schedule 'cosin' \(did you mean 'cosine'\?\) is not one of linear, cosine"),
    (["languages=en,zhh"], r"unknown XNLI language 'zhh' \(did you mean 'zh'\?\)"),
    (["curation_options.perplexity={max_lenght: 48}"],
     r"curation_options.perplexity: unknown option 'max_lenght' \(did you mean 'max_length'\?\)"),
    (["curation_options.perplexity={drop_top_percent: 200}"],
     r"curation_options.perplexity: PerplexityConfig.drop_top_percent=200: use a value in \[0, 100\)"),
    (["curation_options.dedupe={threshold: 0.9}"], r"curation_options: unknown key 'dedupe' \(did you mean 'dedup'\?\)"),
    (["curation_variants.c2_x={stage: c2, qualty: false}"],
     r"curation_variants.c2_x: unknown key 'qualty' \(did you mean 'quality'\?\)"),
    (["curation_variants.c2_x={stage: c3}"],
     r"curation variant 'c2_x' has stage 'c3'.*; set `stage:` to one of c0, c1, c2"),
    (["curation_variants.c2_x={stage: C2}"], r"curation variant 'c2_x' has stage 'C2' \(did you mean 'c2'\?\)"),
    (["metods=lora"], r"unknown config key 'metods' in the command line \(did you mean 'methods'\?\)"),
    (["methods=lora,hybird"], r"unknown method 'hybird' \(did you mean 'hybrid'\?\)"),
    (["curation=c3"], r"unknown curation stage 'c3'.*use a stage \(c0, c1, c2\)"),
    (["epochs=two"], r"config key 'epochs' expects int, got 'two'"),
    (["head=classifer"], r"head: unknown value 'classifer' \(did you mean 'classifier'\?\); use lm .* or classifier"),
    (["head=classifier"], r"head: classifier .* tasks also lists flores: use tasks=xnli"),
    (["head=classifier", "tasks=xnli"], r"head: classifier cannot train method 'lora_ga': lora_ga initialises its "
                                        r"adapter from the gradient of the language-model loss.*drop lora_ga"),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[b[0][0] for b in BAD])
def test_bad_value_fails_before_anything_runs(tmp_path, capsys, overrides, message):
    import re

    out = tmp_path / "out"
    assert main(["run", DEMO, *overrides, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("govtune run: error: ") and re.search(message, last), last
    assert not out.exists()  # no curation/, no runs/: nothing started


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_passes_validation(path):
    config = load_config(path)  # builds every AdapterConfig and CurationConfig it names
    assert config.methods and config.curation


def test_an_error_raised_mid_study_is_the_last_line_printed(tmp_path, capsys, monkeypatch):
    """A progress bar left open when an error propagates is closed before the message, not redrawn after it
    when the bar is garbage-collected."""
    from tqdm.auto import tqdm

    import govtune.study.grid as grid

    def failing_study(*args, **kwargs):
        bar = tqdm(total=4, desc="grid")
        bar.update(1)
        raise ValueError("unknown thing 'x' in the third cell")

    monkeypatch.setattr(grid, "run_study", failing_study)
    assert main(["run", DEMO, "--out", str(tmp_path / "out")]) == 2
    gc.collect()  # the bar's finaliser ran: it printed nothing more
    err = capsys.readouterr().err
    assert err.rstrip("\n").splitlines()[-1] == "govtune run: error: unknown thing 'x' in the third cell"
    assert "grid:" in err  # the bar was drawn, and closed before the message


def test_per_method_rates_are_typed_like_the_top_level_rate():
    from govtune.study.loading import build_config

    c = build_config({"lr_per_method": {"lora": "1e-4"}})  # YAML 1.1 reads 1e-4 (no dot) as a string
    assert c.lr_for("lora") == 1e-4 and isinstance(c.lr_for("lora"), float)
