"""bench/lr_probe.py: the points it plans, resuming (finished points are skipped, other settings refused),
and its table's seed intervals against a hand computation. Runs for real on the tiny Llama."""

import json
import math
from pathlib import Path

import pytest

import govtune.training as training

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def lr_probe(bench_script):
    return bench_script("lr_probe")


def test_the_plan_covers_every_part_once_per_seed(lr_probe):
    points = lr_probe.plan(lr_probe.PARTS, lr_probe.GRID_METHODS, [0, 1, 2])
    per_seed = 4 * 8 + 3 * 3 + 2 * 2 * 4  # grid, hybrid 2-D, LoRA-GA gamma x estimate size x rates
    assert len(points) == 3 * per_seed == len({p.key for p in points})
    assert min(lr_probe.GRID) == 1e-5 and max(lr_probe.GRID) == 2e-3
    hybrid = [p for p in points if p.part == "hybrid2d"]
    assert {(p.lr_branches["lora_ga"], p.lr_branches["boft"]) for p in hybrid} == \
        {(g, b) for g in lr_probe.HYBRID_LORA_GA for b in lr_probe.HYBRID_BOFT}
    assert {(p.ga_gamma, p.ga_examples) for p in points if p.part == "lora_ga_init"} == \
        {(16.0, 32), (16.0, 128), (64.0, 32), (64.0, 128)}
    assert all(p.lr_branches is None for p in points if p.part != "hybrid2d")


def test_rates_and_hybrid_pairs_narrow_the_plan_from_the_command_line(lr_probe):
    args = lr_probe.parse_args(["--part", "grid,hybrid2d", "--methods", "lora,boft", "--seeds", "0",
                                "--rates", "5e-4,1e-3", "--hybrid-rates", "5e-5:1e-3,1e-4:2e-3"])
    points = lr_probe.plan(args.parts, args.methods_list, args.seed_list, args.rate_list, args.hybrid_pairs)
    assert [(p.method, p.lr) for p in points if p.part == "grid"] == \
        [("lora", 5e-4), ("lora", 1e-3), ("boft", 5e-4), ("boft", 1e-3)]
    assert [p.lr_branches for p in points if p.part == "hybrid2d"] == \
        [{"lora_ga": 5e-5, "boft": 1e-3}, {"lora_ga": 1e-4, "boft": 2e-3}]
    default = lr_probe.parse_args([])
    assert default.rate_list == lr_probe.GRID and default.hybrid_pairs is None
    for bad in (["--rates", "fast"], ["--hybrid-rates", "5e-5"], ["--rates", "0,1e-3"]):
        with pytest.raises(SystemExit):
            lr_probe.parse_args(bad)


def test_near_best_keeps_each_series_k_lowest_mean_losses_and_unmeasured_series_whole(lr_probe):
    import dataclasses

    seed0 = lr_probe.plan(lr_probe.PARTS, lr_probe.GRID_METHODS, [0])
    # seed 0's losses: a V over each series with its bottom at the series' 4th rate (hybrid2d: its 5th cell)
    done = []
    for series in ({"grid"}, {"hybrid2d"}):
        for p in (q for q in seed0 if q.part in series and q.method != "boft"):  # boft left unmeasured
            rates = [q for q in seed0 if q.part == p.part and q.method == p.method]
            done.append({**dataclasses.asdict(p), "val_after": abs(rates.index(p) - (3 if p.part == "grid" else 4))})
    later = lr_probe.plan(lr_probe.PARTS, lr_probe.GRID_METHODS, [1])
    kept = lr_probe.near_best(later, done, 3)
    grid = {(p.method, p.lr) for p in kept if p.part == "grid"}
    # the 3 lowest of a V bottoming at GRID[3]: GRID[3] and its two neighbours
    assert {lr for m, lr in grid if m == "lora"} == set(lr_probe.GRID[2:5])
    assert {lr for m, lr in grid if m == "boft"} == set(lr_probe.GRID)  # no finished point: all of it
    hybrid = [p for p in later if p.part == "hybrid2d"]
    assert [p for p in kept if p.part == "hybrid2d"] == hybrid[3:6]
    assert [p for p in kept if p.part == "lora_ga_init"] == [p for p in later if p.part == "lora_ga_init"]
    assert all(p.seed == 1 for p in kept)


def test_resumes_from_its_json_and_refuses_other_settings(lr_probe, tmp_path, monkeypatch, single_thread):
    seen = []
    real_train = training.train

    def spy(model, tok, pairs, val_pairs, config, **kw):
        seen.append((config.lr, config.lr_branches, len(val_pairs)))
        return real_train(model, tok, pairs, val_pairs, config, **kw)

    monkeypatch.setattr(training, "train", spy)
    args = ["--config", str(ROOT / "configs" / "demo.yaml"), "--set", "model=tiny-llama", "--part", "hybrid2d",
            "--seeds", "0", "--work", str(tmp_path / "work"), "--out-dir", str(tmp_path / "out"),
            "--val-per-language", "2"]
    lr_probe.main(args + ["--limit", "1"])
    lr_probe.main(args + ["--limit", "1"])  # the first point is skipped, the next one runs
    g, boft = lr_probe.HYBRID_LORA_GA[0], lr_probe.HYBRID_BOFT[:2]
    assert seen == [(b, {"lora_ga": g, "boft": b}, 6) for b in boft]  # 2 validation rows x 3 languages
    data = json.loads((tmp_path / "out" / "lr_probe.json").read_text())
    assert [p["lr"] for p in data["points"]] == list(boft) and len(data["meta"]["invocations"]) == 2
    assert all(math.isfinite(p["val_after"]) and p["val_after"] != p["val_before"] for p in data["points"])
    assert (tmp_path / "out" / "lr_probe.png").stat().st_size > 0
    assert "| BOFT branch 0.0002 | 2e-05 | 1 |" in (tmp_path / "out" / "lr_probe.md").read_text()
    with pytest.raises(SystemExit, match=r"other settings \(settings_hash, val_per_language\)"):
        lr_probe.main([*args[:-1], "3"])


def test_table_gives_the_mean_and_t_interval_over_seeds(bench_script):
    report = bench_script("lr_probe_report")
    points = [{"part": "grid", "method": "lora", "lr": 1e-4, "seed": s, "val_after": v, "val_before": 3.0,
               "train_loss_mean": 2.0, "step_s": 1.0, "val_examples": 72} for s, v in enumerate([1.0, 1.2, 1.4])]
    cell = report.summarize(points)["grid"]["lora"][0]
    half = 4.302652729911275 * 0.2 / math.sqrt(3)  # t(0.975, 2 df) * sd / sqrt(n)
    assert cell["mean"] == pytest.approx(1.2) and cell["ci"] == pytest.approx((1.2 - half, 1.2 + half))
    assert report.interval([1.0]) is None
    md = report.markdown({"meta": {"settings": {"epochs": 1, "model": "m", "shots": 32, "config": "c.yaml",
                                                "overrides": [], "stage": "c2"}, "invocations": []}, "points": points})
    assert f"| lora | 0.0001 | 3 | 1.200 | [{1.2 - half:.3f}, {1.2 + half:.3f}] | 3.000 | 2.000 | 1.00 |" in md


def test_the_chosen_rate_is_the_lowest_stable_mean_among_the_rates_with_every_seed(bench_script):
    report = bench_script("lr_probe_report")

    def cell(x, mean, train, seeds=3):
        return {"x": x, "mean": mean, "train": train, "seeds": list(range(seeds))}

    cells = [cell(1e-4, 1.70, 2.30), cell(5e-4, 1.60, 2.25), cell(1e-3, 1.40, 4.45),  # 1e-3 spiked: 4.45 > 1.15 x 2.25
             cell(2e-3, 1.50, 2.40, seeds=1)]  # lower than 5e-4 but on one seed only
    assert report.choose(cells)["x"] == 5e-4
    assert report.choose([cell(1e-4, 1.7, 2.3), cell(2e-4, 1.6, 2.3 * 1.15)])["x"] == 2e-4  # at the limit: stable
    assert report.choose([]) is None
