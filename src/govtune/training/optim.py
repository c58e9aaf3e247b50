"""The optimiser's parameter groups: one definition for govtune's loop and for a transformers Trainer.

Every trainable parameter an ordinary optimiser should hold (`govtune.adapters.optimizer_parameters`: the
Riemannian modules of unitary_full step themselves) lands in one named group per role, each with its own
learning rate:

    default           everything that is not a hybrid branch (LoRA, LoRA-GA, BOFT, unitary, full), at `lr`
    lora_ga           the hybrid's LoRA-GA branch (lora_A, lora_B of every hybrid layer), at lr_branches["lora_ga"]
    boft              the hybrid's BOFT branch (the butterfly parameters of R), at lr_branches["boft"]
    head              a classification head trained with the adapter (`govtune.heads`: `score`), at `lr`

A branch without an entry in `lr_branches` trains at `lr`. Within a role, matrices decay at `weight_decay`
and vectors do not (`<role>/no_decay`): decaying a vector only pulls an identity-initialised scale off its
start. The hybrid's third trainable part, the learned mixer's phi, is in none of these groups: it follows
the validation loss, not the training loss, with its own Adam at the adapter option `mixer_lr`
(`govtune.adapters.MixerOptimizer`, one group named "phi").

Why the branches want rates of their own: LoRA-GA starts A and B at a size of d_out^(1/4) / sqrt(gamma)
each, so one AdamW step moves s (dB A + B dA) several times what it moves in a zero-initialised LoRA; its
authors train it at full fine-tuning rates (docs/adapters.md, "LoRA-GA's recipe"), an order of magnitude
below the rates BOFT and LoRA take.

    groups = param_groups(model, lr=5e-4, lr_branches={"lora_ga": 2e-5})
    optimizer = torch.optim.AdamW(groups)          # each group carries its own lr and weight_decay
    # transformers.Trainer: Trainer(..., optimizers=(optimizer, scheduler)), or a create_optimizer override
"""

from __future__ import annotations

from torch import nn

from govtune.adapters import hybrid_layers, optimizer_parameters
from govtune.constants import LR_BRANCHES, check_lr_branches
from govtune.heads import head_parameters

DEFAULT_GROUP = "default"
HEAD_GROUP = "head"
ROLES = (DEFAULT_GROUP, *LR_BRANCHES, HEAD_GROUP)  # the order of the groups


def param_groups(model: nn.Module, lr: float, weight_decay: float = 0.0,
                 lr_branches: dict[str, float] | None = None) -> list[dict]:
    """Parameter groups for torch.optim (see the module docstring): dicts with `name`, `params`, `lr` and
    `weight_decay`; empty groups are left out. Parameters keep the model's order within a group."""
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    rates = check_lr_branches(dict(lr_branches or {}))
    hybrids = hybrid_layers(model)
    if rates and not hybrids:
        raise ValueError(f"lr_branches {rates} sets the rates of the hybrid's branches, but the model has no "
                         f"hybrid layer; drop lr_branches or inject AdapterConfig(method='hybrid')")
    # a group of its own, at lr: the group names are part of what a resumed run must match, so a run with a
    # head never continues the checkpoint of a run without one
    role_of: dict[int, str] = {id(p): HEAD_GROUP for p in head_parameters(model)}
    for layer in hybrids.values():
        role_of.update({id(p): "lora_ga" for p in layer.lora_parameters()})
        role_of.update({id(p): "boft" for p in layer.boft_parameters()})
    groups: dict[tuple[str, bool], dict] = {}
    for p in optimizer_parameters(model):
        role, decay = role_of.get(id(p), DEFAULT_GROUP), p.ndim >= 2
        group = groups.setdefault((role, decay), {
            "name": role if decay else f"{role}/no_decay", "params": [], "lr": rates.get(role, lr),
            "weight_decay": weight_decay if decay else 0.0})
        group["params"].append(p)
    return [groups[k] for k in sorted(groups, key=lambda k: (ROLES.index(k[0]), not k[1]))]


def group_rates(optimizer) -> dict[str, float]:
    """{group name: current lr} of an optimiser built from `param_groups` (unnamed groups by index)."""
    return {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
