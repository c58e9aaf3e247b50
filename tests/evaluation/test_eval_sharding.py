"""Evaluation under `accelerate launch` with 2 CPU processes (gloo): the processes share the batches, the main
process alone writes, and every number equals the one-process run's."""

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from govtune.evaluation.sharding import map_batches, round_robin

RUNNER = Path(__file__).with_name("sharded_eval_run.py")


def test_round_robin_matches_split_between_processes_chunks():
    for n_items in range(0, 12):
        for n_procs in (1, 2, 3, 5):
            order = round_robin(n_items, n_procs)
            assert sorted(order) == list(range(n_items))
            # accelerate gives the first n_items % n_procs processes one item more, in contiguous chunks
            sizes = [n_items // n_procs + (r < n_items % n_procs) for r in range(n_procs)]
            chunks = [order[sum(sizes[:r]):sum(sizes[:r + 1])] for r in range(n_procs)]
            assert chunks == [list(range(r, n_items, n_procs)) for r in range(n_procs)]


def test_map_batches_in_one_process_is_a_loop():
    assert map_batches(lambda b: sum(b), [[1, 2], [3], []]) == [3, 3, 0]


def _free_port() -> int:
    with socket.socket() as sock:  # other test runs on this machine may hold accelerate's default 29500
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _outputs(out: Path) -> dict:
    res = {}
    for task in ("xnli", "flores"):
        metrics = json.loads((out / task / "metrics.json").read_text())
        metrics.pop("timing")
        run = metrics.pop("run")
        res[task] = {"metrics": metrics, "processes": run["processes"],
                     "predictions": (out / task / "predictions.jsonl").read_text(encoding="utf-8"),
                     "files": sorted(p.name for p in (out / task).iterdir())}
    return res


def test_two_processes_equal_one(tmp_path):
    spec = importlib.util.spec_from_file_location("sharded_eval_run", RUNNER)
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    threads = torch.get_num_threads()
    try:
        assert runner.run(tmp_path / "one") == 0
    finally:
        torch.set_num_threads(threads)
    # ACCELERATE_USE_CPU keeps the processes on the CPU (gloo) even on a machine with GPUs. accelerate's
    # --cpu flag would start a single process (its multi-CPU launch needs MPI); --multi_gpu is its torchrun
    # launcher, which starts the two processes.
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true")
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                           "--num_machines", "1", "--main_process_port", str(_free_port()), "--mixed_precision",
                           "no", "--dynamo_backend", "no", str(RUNNER), str(tmp_path / "two")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 2  # one writer per task: the main process
    one, two = _outputs(tmp_path / "one"), _outputs(tmp_path / "two")
    for task in ("xnli", "flores"):
        assert (one[task]["processes"], two[task]["processes"]) == (1, 2)
        assert two[task]["metrics"] == one[task]["metrics"]  # exactly: the same batches, computed elsewhere
        assert two[task]["predictions"] == one[task]["predictions"]
        assert two[task]["files"] == one[task]["files"]  # one writer: no stray temporary files
    # the work was shared, not repeated: each process ran some batches, together exactly the one run's
    single = json.loads((tmp_path / "one" / "forwards.0").read_text())
    shares = [json.loads((tmp_path / "two" / f"forwards.{r}").read_text()) for r in (0, 1)]
    assert min(shares) > 0 and sum(shares) == single
