"""Completion and chat tasks from a task file (TRL's prompt-completion and conversational rows).

Completion: the loss is on the completion only (the training pair's target); evaluation generates
greedily with FLORES's stop rule (the answer ends at its line end, EOS or the budget) and scores chrF++,
BLEU (sacreBLEU's tokenizer by the target's script) and exact match per language. A task file's
`generation_kwargs` (lm-eval's) replace that rule: `until` stop strings (the answer is cut before the
earliest; [] = none, EOS or the budget only) and `max_gen_toks` the budget; the training target then ends
with the first stop string, so a tuned model learns to stop where evaluation cuts.

Chat: the tokenizer's chat template renders the conversation; a conversation with n assistant turns gives
n training pairs (the conversation up to the turn -> the turn), so the loss falls on every assistant turn
and on nothing else. Evaluation is the last assistant turn, generated as a completion after the turns
before it. A tokenizer without a chat template renders `role: content` lines."""

from __future__ import annotations

import time

from govtune.languages import script
from govtune.tasks.classification import render
from govtune.tasks.filetask import FileTask

NO_TEMPLATE_TURN = "{role}: {content}\n"


class CompletionTask(FileTask):
    kind = "completion"
    settings_read = ("eval_limit", "val_per_language", "eval_batch_size", "max_new_tokens")

    def prompt_text(self, row: dict) -> str:
        t = self.spec.doc_to_text
        if isinstance(t, dict):
            t = t.get(row["lang"])
        return render(t, row, self.spec.where("doc_to_text")) if t else row["prompt"]

    def reference(self, row: dict) -> str:
        return row["completion"].strip()

    @property
    def stop_mark(self) -> str:
        """What ends a training target: the newline of the default rule, else the first stop string (none
        for `until: []`)."""
        until = self.spec.until
        return "\n" if until is None else until[0] if until else ""

    def with_stop_mark(self, target: str) -> str:
        """`target` ending with the stop mark (a chat template may already end its turn with it)."""
        return target if target.endswith(self.stop_mark) else target + self.stop_mark

    def training_pair(self, row: dict) -> tuple[str, str]:
        """The target ends where evaluation stops generating (by default the newline, as FLORES's does)."""
        return self.prompt_text(row), self.spec.target_delimiter + self.reference(row) + self.stop_mark

    def evaluate(self, model, tokenizer, tests, *, seed, progress, calibration=None):
        return evaluate_completions(self, model, tokenizer, tests, progress=progress)

    def intervals(self, predictions):
        from govtune.evaluation.bootstrap import completion_intervals  # here: the evaluators import torch

        return completion_intervals(predictions)


class ChatTask(CompletionTask):
    def use_tokenizer(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def _render(self, messages: list[dict], generation_prompt: bool) -> str:
        tok = getattr(self, "tokenizer", None)
        if tok is not None and getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        text = "".join(NO_TEMPLATE_TURN.format(**m) for m in messages)
        return text + ("assistant:" if generation_prompt else "")

    def prompt_text(self, row: dict) -> str:
        return self._render(row["messages"][:-1], True)

    def reference(self, row: dict) -> str:
        return row["messages"][-1]["content"].strip()

    def training_pair(self, row: dict) -> tuple[str, str]:
        """The last assistant turn (what a demonstration shows, what evaluation generates)."""
        return self._turn_pair(row["messages"], len(row["messages"]) - 1)

    def _turn_pair(self, messages: list[dict], i: int) -> tuple[str, str]:
        prompt = self._render(messages[:i], True)
        full = self._render(messages[:i + 1], False)
        if not full.startswith(prompt):  # a template that rewrites earlier turns: the turn's text alone
            return prompt, " " + messages[i]["content"].strip() + self.stop_mark
        return prompt, self.with_stop_mark(full[len(prompt):])

    def training_pairs(self, row: dict) -> list[tuple[str, str]]:
        """One pair per assistant turn: the loss is on assistant turns only."""
        return [self._turn_pair(row["messages"], i) for i, m in enumerate(row["messages"]) if m["role"] == "assistant"]


def evaluate_completions(task: CompletionTask, model, tokenizer, tests: dict[str, list[dict]], *,
                         progress: bool) -> tuple[dict, list[dict]]:
    """Greedy completion of every test prompt; chrF++, BLEU and exact match per language."""
    # here, not at the top: the evaluators and the encoding import torch, and a task file is read without it
    from govtune.evaluation.metrics import bleu_with_signature, corpus_chrf, exact_match, macro, parity_gap
    from govtune.evaluation.scoring import generate_lines, require_tokenizer
    from govtune.evaluation.xnli_eval import check_examples
    from govtune.text.encoding import special_prefix

    check_examples(tests, task.name)
    require_tokenizer(tokenizer, model)
    task.use_tokenizer(tokenizer)
    c = task.settings
    prefix = special_prefix(tokenizer)
    flat = [(lang, r) for lang, rows in tests.items() for r in rows]
    prompts = [prefix + tokenizer.encode(r.get("context", "") + task.prompt_text(r), add_special_tokens=False)
               for _, r in flat]
    scripts = [_script(lang, script) for lang, _ in flat]
    budget = task.spec.max_gen_toks or c.max_new_tokens
    t0 = time.perf_counter()
    # By default a completion is one line: it ends at its line end (FLORES's rule, sentences unbounded), EOS
    # or budget; the task's `until` stop strings replace that rule.
    hyps = generate_lines(model, tokenizer, prompts, max_new_tokens=budget, batch_size=c.eval_batch_size,
                          scripts=scripts, sentences=[10_000] * len(flat), until=task.spec.until, progress=progress,
                          desc=task.name)
    seconds = time.perf_counter() - t0
    preds = [{"language": lang, "id": r["id"], "perturbation": None, "source": task.prompt_text(r),
              "hypothesis": h, "reference": task.reference(r), "exact": exact_match(h, task.reference(r))}
             for (lang, r), h in zip(flat, hyps)]
    per_lang = {}
    for lang in tests:
        recs = [p for p in preds if p["language"] == lang]
        hy, rf = [p["hypothesis"] for p in recs], [p["reference"] for p in recs]
        bleu, signature = bleu_with_signature(hy, rf, lang)
        per_lang[lang] = {"chrf": corpus_chrf(hy, rf), "bleu": bleu,
                          "exact_match": 100.0 * sum(p["exact"] for p in recs) / len(recs), "n": len(recs),
                          "signature": signature}
    chrf = {lang: v["chrf"] for lang, v in per_lang.items()}
    metrics = {"task": task.name, "languages": per_lang, "average_chrf": macro(chrf),
               "average_bleu": macro({lang: v["bleu"] for lang, v in per_lang.items()}),
               "average_exact_match": macro({lang: v["exact_match"] for lang, v in per_lang.items()}),
               "chrf_gap": parity_gap(chrf),
               "timing": {"seconds": seconds, "examples": len(flat), "batch_size": c.eval_batch_size,
                          "max_new_tokens": budget}}
    return metrics, preds


def _script(lang: str, script) -> str:
    try:
        return script(lang)
    except ValueError:  # a language outside govtune's table: Latin sentence marks
        return "Latn"
