"""Run by test_data_parallel, in one process and under a 2-process launch: train every adapter method on the
tiny Llama, one after the other, and let the main process write OUT/train.pt with each method's final weights
and log, plus every process's own lam trajectory, phi and weights (gathered) to compare the replicas.

    python tests/training/dp_train_run.py /tmp/dp-one
    torchrun --nproc_per_node 2 tests/training/dp_train_run.py /tmp/dp-two
    python tests/training/dp_train_run.py --compare /tmp/dp-one /tmp/dp-two    # largest differences"""

import sys
from pathlib import Path

import torch
from accelerate.utils import gather_object

from govtune.adapters import AdapterConfig, inject, lam_history, phi_values
from govtune.launch import leave_process_group_at_exit
from govtune.models import tiny_model
from govtune.text.encoding import PairCollator, encode_training_pairs, pad_token_id
from govtune.training import TrainConfig, make_accelerator, train

WORDS = ["alpha", "bravo", "charlie", "delta"]
# Prompts and targets of several lengths, so a process's share of a batch is padded differently from the
# whole batch. 21 rows in batches of 5 with grad_accum 2: steps of 10, 10 and 1 rows, the last leaving the
# second process without a row; validation batches of 5 and 2 rows.
PAIRS = [(f"Item {i % 4}: {'so ' * (i % 3)}the code word is", f" {WORDS[i % 4]}{'!' * (i % 2)}")
         for i in range(21)]
VAL = PAIRS[:7]
CONFIG = TrainConfig(epochs=2, lr=5e-3, batch_size=5, grad_accum=2, max_grad_norm=1.0, warmup_ratio=0.0,
                     progress=False, checkpoints=False)
METHODS = {"lora": {}, "lora_ga": {}, "boft": {}, "hybrid": {},
           "hybrid_learned": {"lam_schedule": "learned", "mixer_lr": 0.1, "mixer_every": 1},
           "unitary_full": {}}


def _adapted(method: str):
    torch.manual_seed(0)
    model, tok = tiny_model()
    options = METHODS[method]
    method = "hybrid" if method == "hybrid_learned" else method
    enc = encode_training_pairs(tok, PAIRS[:10], 256)
    calibration = [{k: v for k, v in PairCollator(pad_token_id(tok))(enc[i:i + 5]).items()
                    if k in ("input_ids", "attention_mask", "labels")} for i in (0, 5)]
    inject(model, AdapterConfig(method=method, r=4, alpha=8, boft_block_size=4, ga_batches=2, **options),
           calibration=calibration if method in ("lora_ga", "hybrid") else None)
    return model, tok


def run(out: Path) -> int:
    accelerator = make_accelerator("no", CONFIG.grad_accum)
    results = {}
    for method in METHODS:
        model, tok = _adapted(method)
        result = train(model, tok, PAIRS, VAL, CONFIG, accelerator=accelerator)
        model = accelerator.unwrap_model(model)
        weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        mine = {"lam": lam_history(model), "phi": phi_values(model), "weights": weights}
        results[method] = {"weights": weights, "history": result.history.to_dict(),
                           "processes": gather_object([mine])}
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        torch.save({"processes": accelerator.num_processes, "methods": results}, out / "train.pt")
    accelerator.wait_for_everyone()
    return 0


def compare(one: Path, two: Path) -> str:
    """A markdown table of the largest absolute differences between two runs, per method."""
    a, b = (torch.load(d / "train.pt", weights_only=False) for d in (one, two))
    rows = [f"| method ({a['processes']} vs {b['processes']} processes) | weights | step loss | gradient norm | lam "
            f"| phi | validation loss | lam, phi, weights equal on every process |", "|---" * 8 + "|"]
    for method, x in a["methods"].items():
        y = b["methods"][method]
        steps = list(zip(x["history"]["steps"], y["history"]["steps"]))

        def step_diff(key):
            return max(abs(s[key] - t[key]) for s, t in steps)

        def map_diff(key):
            return max([abs(s[key][k] - t[key][k]) for s, t in steps for k in s[key]] or [0.0])

        val = [(e["val_loss"], f["val_loss"]) for e, f in zip(x["history"]["epochs"], y["history"]["epochs"])]
        val.append((x["history"]["initial_val_loss"], y["history"]["initial_val_loss"]))
        weights = max(float((x["weights"][k] - y["weights"][k]).abs().max()) for k in x["weights"])
        procs = y["processes"]
        equal = all(p["lam"] == procs[0]["lam"] and p["phi"] == procs[0]["phi"]
                    and all(torch.equal(p["weights"][k], procs[0]["weights"][k]) for k in p["weights"])
                    for p in procs)
        rows.append(f"| {method} | {weights:.1e} | {step_diff('loss'):.1e} | {step_diff('grad_norm'):.1e} | "
                    f"{map_diff('lam'):.1e} | {map_diff('phi'):.1e} | {max(abs(u - v) for u, v in val):.1e} | "
                    f"{'yes' if equal else 'NO'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        print(compare(Path(sys.argv[2]), Path(sys.argv[3])))
        sys.exit(0)
    leave_process_group_at_exit()  # as govtune's CLI does: a gloo group left to the exit aborts now and then
    sys.exit(run(Path(sys.argv[1])))
