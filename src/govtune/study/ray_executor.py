"""A study's cells as Ray tasks (`govtune run CONFIG --executor ray`): the same cells, the same numbers, on
every node of a Ray cluster (or a local Ray instance) at once.

The driver (the `govtune run` process) does everything a study writes: it holds the directory's lock,
curates once, submits each unfinished cell as a task with the resources of `cell_resources`, and records
each finished cell (result.json, the database, `done`, results.json, the manifest) as it comes back. A
task only computes its cell and writes the cell's own files (history, predictions, adapter) into
`OUT/runs/<run_id>/`, which on a cluster must be storage every node mounts.

A worker that dies mid-cell is not retried by Ray (its retries would rerun the cell on top of the failed
attempt's files): the driver clears the attempt as `--resume` does, keeping its last epoch checkpoint, and
submits it again, up to `cell_retries` times; then the cell is marked failed with its error and the others
go on. A driver that dies leaves a directory that `--resume` finishes under either executor."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Any

from govtune import __version__ as govtune_version

# A test hook, since tiny cells finish too fast to kill one from outside: GOVTUNE_RAY_KILL_ONCE=RUN_ID:MARKER
# makes the worker of cell RUN_ID exit abruptly (as a killed process does) after computing the cell and
# before returning it, once: MARKER is created the first time and stops later attempts from dying too.
KILL_ONCE = "GOVTUNE_RAY_KILL_ONCE"
PROBE_FILE = ".govtune-ray-probe"


def ray_module():
    """`ray`, or an error with the install command."""
    try:
        import ray
    except ModuleNotFoundError:
        raise ModuleNotFoundError("--executor ray needs Ray, which is not installed: `pip install 'govtune[ray]'` "
                                  "(or `pip install ray`), or run with --executor local") from None
    return ray


def _reachable(address: str, timeout: float = 5.0) -> str | None:
    """A problem reaching the host:port of a Ray head, or None. Ray itself waits a long time on a dead
    address; `auto` and an address without a port are left to Ray."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if address == "auto" or not port.isdigit():
        return None
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return None
    except OSError as e:
        return f"{e.__class__.__name__}: {e}"


def connect(address: str | None) -> bool:
    """Join the Ray cluster at `address` (or RAY_ADDRESS), or start a local Ray instance; True when this call
    connected (and the caller disconnects at the end), False when the process had already joined one."""
    ray = ray_module()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return False
    if address:
        problem = _reachable(address)
        if problem:
            raise ConnectionError(f"cannot reach the Ray cluster at {address!r} ({problem}): start its head with "
                                  f"`ray start --head`, give its address with --ray-address or RAY_ADDRESS, or "
                                  f"unset RAY_ADDRESS to run on a local Ray instance")
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False)
    return True


def ray_options(resources: dict[str, Any]) -> dict[str, Any]:
    """The task options for one cell: its resources, and no Ray retries (the driver retries, see above)."""
    options: dict[str, Any] = {"num_cpus": resources.get("num_cpus", 1), "max_retries": 0}
    if resources.get("num_gpus"):
        options["num_gpus"] = resources["num_gpus"]
    if resources.get("memory"):
        options["memory"] = int(resources["memory"])
    return options


def check_resources(resources: dict[str, Any], nodes: list[dict]) -> None:
    """Refuse, before any work, a cell that no alive node can hold, and a cell on several GPUs."""
    if resources.get("num_gpus", 0) > 1:
        raise ValueError(f"cell_resources.num_gpus is {resources['num_gpus']:g}: a cell under Ray runs in one "
                         f"process on at most one GPU. Train on several GPUs per cell with `accelerate launch "
                         f"govtune run ... --executor local`, or give each cell one GPU")
    want = {"CPU": resources.get("num_cpus", 1), "GPU": resources.get("num_gpus", 0),
            "memory": resources.get("memory", 0)}
    alive = [n for n in nodes if n.get("Alive")]
    if any(all(n["Resources"].get(k, 0) >= v for k, v in want.items() if v) for n in alive):
        return
    have = "; ".join(", ".join(f"{k} {n['Resources'].get(k, 0):g}" for k in want) for n in alive) or "no alive node"
    raise ValueError(f"no node of the Ray cluster can run a cell with cell_resources {resources} "
                     f"(asked: {', '.join(f'{k} {v:g}' for k, v in want.items() if v)}; nodes have: {have}). "
                     f"Lower cell_resources or add a node that has them")


def _probe(study_dir: str, token: str, version: str | None, model: str) -> list[str]:
    """Run on one node: is the study directory the driver's, is govtune the driver's version, is the model
    there without a download? The version is that of the code the node imports (`govtune.__version__`: Ray
    sends this function by reference, so the node runs its own govtune), not the installed package metadata's,
    which an editable install leaves at the version it was installed with."""
    problems = []
    probe = Path(study_dir) / PROBE_FILE
    if not probe.is_file() or probe.read_text() != token:
        problems.append(f"the study directory {study_dir} is not the driver's here (mount it on every node)")
    if govtune_version != version:
        problems.append(f"govtune {govtune_version} here, the driver runs {version}")
    from govtune.models import model_available  # transformers: only on the node that probes

    if not model_available(model):
        problems.append(f"model {model!r} is not on this node (no local path, offline package or hub cache)")
    return problems


def probe_nodes(ray, study_dir: Path, model: str) -> None:
    """Refuse to start unless every alive node sees the study directory, runs the driver's govtune and
    has the model, naming what each node lacks."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    probe_file = study_dir / PROBE_FILE
    probe_file.write_text(token)
    try:
        version = govtune_version
        task = ray.remote(num_cpus=0, max_retries=0)(_probe)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(study_dir), token, version, model) for n in nodes]
        found = {n["NodeManagerAddress"]: p for n, p in zip(nodes, ray.get(refs)) if p}
    finally:
        probe_file.unlink(missing_ok=True)
    if found:
        lines = "\n".join(f"- node {node}: {'; '.join(p)}" for node, p in found.items())
        raise ConnectionError(f"the Ray cluster cannot run this study:\n{lines}\nPut the study directory on storage "
                           f"every node mounts (--out), install the same govtune on every node, and make the "
                           f"model available on every node (GOVTUNE_CACHE on shared storage, or a local path)")


def _run_remote(config, out_dir: str, cell, kill: str | None) -> tuple[str, Any]:
    """One cell in a Ray worker: ("ok", (result, curves)) or ("diverged", message). A runner of its own
    rebuilds the study's data from the config (the driver has curated: the worker reads the cache) and
    writes the cell's files; the driver records them."""
    # Imported in the worker: torch and the runner are not needed to connect, probe or submit.
    from govtune.study.cell import CellRun
    from govtune.study.data import StudyData
    from govtune.study.grid import StudyRunner
    from govtune.training import TrainingDiverged, make_accelerator

    runner = StudyRunner(config, out_dir, progress=False)
    runner.data = StudyData(config, runner.layout, progress=False)
    runner.accelerator = make_accelerator(config.mixed_precision, config.grad_accum)
    try:
        out = CellRun(runner, cell, runner.layout.run(cell.run_id)).result()
    except TrainingDiverged as e:
        return "diverged", str(e)
    if kill:
        run_id, _, marker = kill.partition(":")
        if run_id == cell.run_id and not Path(marker).exists():
            Path(marker).touch()
            os._exit(1)  # dies as a killed worker does: no result, no clean-up
    return "ok", out


class RayCells:
    """Runs a study's unfinished cells as Ray tasks and records each as it finishes, through the driver's
    `StudyRunner` (its one writer): `start_attempt` before a cell is submitted, `record_cell` when it is
    back, `mark_failed` when it diverged or its worker died too often."""

    def __init__(self, runner):
        self.config, self.layout = runner.config, runner.layout
        self.start, self.record, self.fail = runner.start_attempt, runner.record_cell, runner.mark_failed

    def run(self, todo: list, outcome, bar) -> None:
        ray = ray_module()
        probe_nodes(ray, self.layout.root, self.config.model)
        task = ray.remote(_run_remote).options(**ray_options(self.config.cell_resources))
        kill = os.environ.get(KILL_ONCE)
        attempts: dict[str, int] = {}
        pending: dict[Any, Any] = {}

        def submit(cell) -> None:
            run = self.layout.run(cell.run_id)
            self.start(run)
            attempts[cell.run_id] = attempts.get(cell.run_id, 0) + 1
            pending[task.remote(self.config, str(self.layout.root), cell, kill)] = cell

        for cell in todo:
            submit(cell)
        self._show(bar, outcome, pending)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(ref)
            run = self.layout.run(cell.run_id)
            try:
                status, value = ray.get(ref)
            except ray.exceptions.RayError as e:  # the worker died, or the cell raised
                first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
                if attempts[cell.run_id] <= self.config.cell_retries:
                    bar.write(f"{cell.run_id}: attempt {attempts[cell.run_id]} failed ({first}); retrying from "
                              f"its last epoch checkpoint")
                    submit(cell)
                    continue
                status, value = "failed", f"failed after {attempts[cell.run_id]} attempts: {first}"
            if status == "ok":
                self.record(run, cell, *value)
                outcome.ran.append(cell.run_id)
            else:
                self.fail(run, cell, value)
                outcome.failed[cell.run_id] = value
            bar.update(1)
            self._show(bar, outcome, pending)

    @staticmethod
    def _show(bar, outcome, pending) -> None:
        bar.set_postfix_str(f"done {len(outcome.ran)} running/queued {len(pending)} failed {len(outcome.failed)}")
