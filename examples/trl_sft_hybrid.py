"""govtune's hybrid adapter trained by TRL's SFTTrainer, offline on a CPU: Gemma 3 270M, English->Spanish
FLORES pairs as a prompt-completion dataset (loss on the completion only), a few steps; then the adapter is
saved with govtune.save_adapter, loaded into a fresh copy of the base model with govtune.load_adapter, and
the two models' logits are checked equal.

    python examples/trl_sft_hybrid.py [--steps 3] [--out runs/trl_sft_hybrid]

Needs `pip install -e ".[trl]"` (scripts/setup.sh installs it) and the offline Gemma 3 270M."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

import govtune
from govtune.data.flores import load_flores
from govtune.integrations import prepare_trainer
from govtune.models import GEMMA3, load_model
from govtune.text.encoding import PairCollator, encode_training_pairs, pad_token_id
from govtune.text.prompts import flores_training_pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/trl_sft_hybrid"))
    args = parser.parse_args()
    start = time.perf_counter()

    pairs = [flores_training_pair(ex) for ex in load_flores("en", "es", limit=16)]
    model, tok = load_model(GEMMA3)
    # The hybrid starts its LoRA branch from the loss gradient (LoRA-GA): two calibration batches.
    enc = encode_training_pairs(tok, pairs[:8], max_length=128)
    collate = PairCollator(pad_token_id(tok))
    calibration = [{k: v for k, v in collate(enc[i:i + 4]).items() if k != "position_ids"} for i in (0, 4)]
    govtune.inject(model, govtune.AdapterConfig(method="hybrid", r=8, alpha=16, ga_batches=2),
                   calibration=calibration)

    trainer = SFTTrainer(
        model=model, processing_class=tok,
        train_dataset=Dataset.from_list([{"prompt": p, "completion": c} for p, c in pairs]),
        args=SFTConfig(output_dir=str(args.out), max_steps=args.steps, per_device_train_batch_size=2,
                       learning_rate=2e-4, warmup_steps=0, max_grad_norm=1.0, max_length=128, logging_steps=1,
                       save_strategy="no", report_to="none", seed=0,
                       bf16=torch.cuda.is_available()))  # on the CPU float32: bf16 autocast is slower there
    # lam from the fresh gradients, clipping, lam (mean, min, max) and the branch norms in the log
    prepare_trainer(trainer, layer_logs=False)
    lam0 = govtune.mixing(model)
    trainer.train()
    for log in trainer.state.log_history:
        if "loss" in log:
            print(f"step {log['step']}: loss {log['loss']:.4f}  grad_norm {log['grad_norm']:.3f}  "
                  f"lora {log['grad_norm/lora']:.3f}  boft {log['grad_norm/boft']:.3f}  lam {log['lam/mean']:.4f}")
    lam = govtune.mixing(model)
    print(f"lam moved in {sum(abs(lam[n] - lam0[n]) > 1e-6 for n in lam)} of {len(lam)} layers")

    adapter_dir = govtune.save_adapter(model, args.out / "adapter")
    fresh, _ = load_model(GEMMA3)
    govtune.load_adapter(fresh, adapter_dir)
    batch = collate(encode_training_pairs(tok, pairs[8:12], max_length=128))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    model.eval()
    with torch.no_grad():
        diff = (model(**inputs).logits - fresh(**inputs).logits).abs().max().item()
    print(f"adapter in {adapter_dir}: reloaded model's logits differ by at most {diff:.2e}")
    if diff > 1e-4:
        raise SystemExit("the reloaded adapter does not reproduce the trained model")
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
