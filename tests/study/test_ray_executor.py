"""A study's cells on Ray (`--executor ray`): the same results as the local executor, a worker killed
mid-cell retried until every cell is done, clear refusals before any work, and datatrove's Ray executor
running govtune's curation steps. One local Ray instance (2 CPUs) serves the module."""

from __future__ import annotations

import json
import sys

import pytest

ray = pytest.importorskip("ray")

from govtune.study.grid import run_study  # noqa: E402
from govtune.results.layout import StudyLayout  # noqa: E402
from govtune.study import ray_executor  # noqa: E402

pytestmark = pytest.mark.timeout(900)
GRID = dict(methods=["lora", "hybrid"], seeds=[0, 1], shots=[8], curation=["c0"], cell_resources={"num_cpus": 1})


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_result(tmp_path_factory, study):
    out = tmp_path_factory.mktemp("local") / "study"
    run_study(study(**GRID), out, progress=False, report=False)
    return _results(out)


def _results(out) -> dict[str, dict]:
    return {r["run_id"] if "run_id" in r else f"{r['method']}-k{r['shots']}-{r['curation']}-s{r['seed']}": r
            for r in (json.loads(run.result.read_text()) for run in StudyLayout(out).finished_runs())}


def _measured(metrics: dict) -> dict:
    """Metrics without their timings (seconds and examples per second are measurements of the machine)."""
    return {k: _measured(v) if isinstance(v, dict) else v for k, v in metrics.items() if k != "timing"}


def _same_numbers(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for run_id in a:
        assert _measured(a[run_id]["metrics"]) == _measured(b[run_id]["metrics"]), run_id
        assert a[run_id]["ci95"] == b[run_id]["ci95"], run_id
        assert a[run_id]["footprint"]["threads"] == b[run_id]["footprint"]["threads"] == 1


def test_an_unreachable_cluster_is_refused_at_once(tmp_path, study, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if ray.is_initialized():
        pytest.skip("this process already joined a Ray instance")
    with pytest.raises(ConnectionError, match="cannot reach the Ray cluster at '127.0.0.1:1'"):
        run_study(study(**GRID), tmp_path / "never", executor="ray", ray_address="127.0.0.1:1")
    assert not (tmp_path / "never").exists()


def test_ray_not_installed_names_the_extra(monkeypatch, study, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'govtune\[ray\]'"):
        run_study(study(**GRID), tmp_path / "never", executor="ray")


def test_ray_gives_the_local_executor_s_results(local_ray, local_result, tmp_path, study):
    out = tmp_path / "ray"
    outcome = run_study(study(**GRID), out, progress=False, report=False, executor="ray")
    assert len(outcome.ran) == 4 and not outcome.failed
    _same_numbers(_results(out), local_result)
    assert ray.is_initialized()  # the instance the process had joined is left to it


def test_a_worker_killed_mid_cell_is_retried_and_every_cell_finishes(local_ray, local_result, tmp_path, study,
                                                                     monkeypatch):
    marker = tmp_path / "killed"
    monkeypatch.setenv(ray_executor.KILL_ONCE, f"hybrid-k8-c0-s1:{marker}")
    out = tmp_path / "ray"
    outcome = run_study(study(**GRID), out, progress=False, report=False, executor="ray")
    assert marker.exists()  # the worker of that cell did die once
    assert len(outcome.ran) == 4 and not outcome.failed
    assert all(StudyLayout(out).run(r).is_done() for r in outcome.ran)
    _same_numbers(_results(out), local_result)


def test_a_cell_that_keeps_dying_is_marked_failed_while_the_others_finish(local_ray, tmp_path, study,
                                                                          monkeypatch):
    # A marker that can never be created: the worker of this cell dies on every attempt.
    monkeypatch.setenv(ray_executor.KILL_ONCE, f"lora-k8-c0-s0:{tmp_path / 'missing-dir' / 'marker'}")
    monkeypatch.setattr(ray_executor.Path, "touch", lambda self: None)
    out = tmp_path / "ray"
    outcome = run_study(study(**GRID, cell_retries=1), out, progress=False, report=False, executor="ray")
    assert set(outcome.failed) == {"lora-k8-c0-s0"} and len(outcome.ran) == 3
    assert "failed after 2 attempts" in StudyLayout(out).run("lora-k8-c0-s0").failed.read_text()


def test_a_study_the_ray_driver_left_resumes_locally(local_ray, local_result, tmp_path, study):
    out = tmp_path / "ray"
    config = study(**{**GRID, "seeds": [0]})
    run_study(config, out, progress=False, report=False, executor="ray")
    outcome = run_study(study(**GRID), out, resume=True, progress=False, report=False)  # adds seed 1 locally
    assert sorted(outcome.skipped) == ["hybrid-k8-c0-s0", "lora-k8-c0-s0"] and len(outcome.ran) == 2
    _same_numbers(_results(out), local_result)


def test_resources_no_node_has_are_refused_before_any_work(local_ray, tmp_path, study):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="no node of the Ray cluster can run a cell"):
        run_study(study(**{**GRID, "cell_resources": {"num_cpus": 64}}), out, executor="ray")
    with pytest.raises(ValueError, match="at most one GPU"):
        run_study(study(**{**GRID, "cell_resources": {"num_cpus": 1, "num_gpus": 2}}), out, executor="ray")
    assert not out.exists()


def test_the_node_probe_names_what_a_node_lacks(tmp_path):
    (tmp_path / ray_executor.PROBE_FILE).write_text("other")
    problems = ray_executor._probe(str(tmp_path), "token", "0.0.0", "no-such-org/no-such-model")
    assert len(problems) == 3
    assert "not the driver's" in problems[0] and "the driver runs 0.0.0" in problems[1]
    assert "no-such-org/no-such-model" in problems[2]


def test_cell_resources_are_checked_in_the_config(study):
    with pytest.raises(ValueError, match="unknown resource 'cpus'"):
        study(cell_resources={"cpus": 1})
    with pytest.raises(ValueError, match="size such as 6GB"):
        study(cell_resources={"memory": "lots"})
    assert study(cell_resources={"memory": "6GB"}).cell_resources == {"memory": 6 * 10**9}
    # How the grid runs is not what it computes: retries never enter the settings hash.
    assert study(cell_retries=5).settings_hash() == study().settings_hash()


def test_datatrove_s_ray_executor_runs_govtune_s_curation_steps(local_ray, tmp_path):
    from datatrove.executor import RayPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    from govtune.governance import CurationConfig, curate
    from govtune.governance.datatrove_steps import (LanguageIdFilter, QualityFilter, dropped_writer_adapter,
                                                    record_reader_adapter, record_writer_adapter)
    from govtune.governance.synthetic import build_pool

    langs = ["en", "zh", "hi"]
    pool = build_pool(langs, seed=0)[:200]
    src = tmp_path / "in"
    src.mkdir()
    for i, part in enumerate((pool[:100], pool[100:])):
        (src / f"part{i}.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in part) + "\n")

    def writer(folder, adapter=record_writer_adapter):
        return JsonlWriter(str(folder), adapter=adapter, compression=None, output_filename="${rank}.jsonl")

    RayPipelineExecutor([JsonlReader(str(src), adapter=record_reader_adapter, glob_pattern="*.jsonl"),
                         LanguageIdFilter(langs, exclusion_writer=writer(tmp_path / "dropped", dropped_writer_adapter)),
                         QualityFilter(exclusion_writer=writer(tmp_path / "dropped_q", dropped_writer_adapter)),
                         writer(tmp_path / "kept")],
                        tasks=2, workers=2, cpus_per_task=1, mem_per_cpu_gb=0.5,
                        logging_dir=str(tmp_path / "logs")).run()

    def read_all(folder):
        return [json.loads(x) for p in sorted(folder.glob("*.jsonl")) for x in p.read_text().splitlines()]

    kept = read_all(tmp_path / "kept")
    ref = curate(pool, langs, "c2", progress=False, config=CurationConfig(skip=("dedup",)))
    assert sorted(r["id"] for r in kept) == sorted(r["id"] for r in ref.kept)
    dropped = read_all(tmp_path / "dropped") + read_all(tmp_path / "dropped_q")
    assert {r["id"]: r["reason"] for r in dropped} == {r["id"]: r["reason"] for r in ref.dropped}
