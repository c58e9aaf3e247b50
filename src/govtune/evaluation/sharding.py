"""Evaluation across processes: under `accelerate launch --num_processes N` every process builds the same
batches, runs its share, and receives every batch's result.

The unit of work is the batch, not the example: each batch is exactly the batch a single process would
have formed (same rows, same padding), so on deterministic kernels every number is bit-identical to the
one-process run, whatever N. Batches are sorted by length, so they are dealt round-robin (process r gets
batches r, r + N, ...) to give every process a similar mix of long and short ones. Without
`accelerate launch` this is a plain loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from govtune.launch import cpu_processes

B = TypeVar("B")
R = TypeVar("R")


def process_state():
    """accelerate's PartialState: num_processes, process_index, is_main_process, device (1 process when not launched).

    On a machine without an accelerator (or with ACCELERATE_USE_CPU set, as `accelerate launch --cpu`
    does) the processes are CPU processes joined by gloo: PartialState only forms that group when asked
    for the CPU, and otherwise leaves each launched process on its own."""
    return PartialState(cpu=cpu_processes())


def round_robin(n_items: int, n_procs: int) -> list[int]:
    """Item indices ordered so that contiguous, near-equal chunks (what `split_between_processes` hands out:
    the first n_items % n_procs processes get one more) are the round-robin shares: chunk r = r, r + N, ..."""
    return [i for r in range(n_procs) for i in range(r, n_items, n_procs)]


def map_batches(fn: Callable[[B], R], batches: Sequence[B], *, progress: bool = False, desc: str = "",
                unit: str = "batch") -> list[R]:
    """[fn(b) for b in batches], each batch run by one process; every process gets the whole list, in order.

    Every process must call this with the same batches (gather_object is collective)."""
    state = process_state()
    if state.num_processes == 1:
        return [fn(b) for b in tqdm(batches, disable=not progress, desc=desc, unit=unit)]
    with state.split_between_processes(round_robin(len(batches), state.num_processes)) as mine:
        bar = tqdm(mine, disable=not (progress and state.is_main_process), desc=f"{desc} [process 0 of "
                   f"{state.num_processes}]", unit=unit)
        local = [(i, fn(batches[i])) for i in bar]
    out: list = [None] * len(batches)
    for i, result in gather_object(local):  # gather_object concatenates the processes' lists
        out[i] = result
    return out
