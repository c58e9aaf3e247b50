"""Run by test_data_parallel, in one process and under a 2-process launch: train every adapter method on the
tiny Llama, one after the other, and let the main process write OUT/train.pt with each method's final weights
and log, plus every process's own lam trajectory, phi and weights (gathered) to compare the replicas."""

import sys
from pathlib import Path

import torch
from accelerate.utils import gather_object

from govtune.adapters import AdapterConfig, inject, lam_history, phi_values
from govtune.models import tiny_model
from govtune.tasks.encoding import PairCollator, encode_training_pairs, pad_token_id
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


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
