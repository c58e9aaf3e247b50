"""A classification task from a task file: scored as XNLI is (the evaluator is XNLI's, with this task's
`Verbalizer`): the log-likelihood of each label's continuation after the prompt, normalised over the labels,
so accuracy, macro-F1, ECE, Brier, temperature scaling, parity and robustness come from one pass."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from govtune.tasks.filetask import ROW, FileTask, row_key
from govtune.tasks.task import validation_sample

DEFAULT_TEMPLATE = "{{text}}\nAnswer:"
DEFAULT_PAIR_TEMPLATE = "{{text}}\n{{text_pair}}\nAnswer:"


@lru_cache(maxsize=64)
def jinja_template(source: str):
    """A Jinja template as lm-eval renders doc_to_text (undefined fields are an error, not empty text)."""
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(source)


def render(source: str, row: dict, where: str) -> str:
    import jinja2

    try:
        return jinja_template(source).render(**row)
    except jinja2.exceptions.UndefinedError as e:
        raise ValueError(f"{where}: the template uses a field the row does not have ({e}); rows have "
                         f"{', '.join(sorted(row))}") from None
    except jinja2.exceptions.TemplateError as e:
        raise ValueError(f"{where}: template error: {e}") from None


class TaskVerbalizer:
    """`govtune.evaluation.xnli_eval.Verbalizer` of a task file: its template and label words."""

    cut_field = "text"
    heads = False

    def __init__(self, task: "ClassificationTask"):
        self.task = self.title = task.name
        self.spec = task.spec
        self.labels = tuple(task.spec.labels)
        self.text_fields = ("text", "text_pair") if task.has_pair else ("text",)

    def template(self, lang: str) -> str:
        t = self.spec.doc_to_text
        if isinstance(t, dict):
            if lang not in t:
                raise ValueError(f"{self.spec.where('doc_to_text')}: no template for language {lang!r}; add one "
                                 f"(it has {', '.join(t)})")
            return t[lang]
        return t or (DEFAULT_PAIR_TEMPLATE if "text_pair" in self.text_fields else DEFAULT_TEMPLATE)

    def prompt(self, ex: dict, cut: str) -> str:
        return render(self.template(ex["lang"]), {**ex, "text": cut}, self.spec.where("doc_to_text"))

    def words(self, lang: str) -> dict[str, str]:
        return self.spec.label_words.get(lang) or {lab: lab for lab in self.labels}

    def continuations(self, lang: str) -> tuple[str, ...]:
        words = self.words(lang)
        return tuple(self.spec.target_delimiter + words[lab] for lab in self.labels)


class ClassificationTask(FileTask):
    kind = "classification"
    calibrates = True
    settings_read = ("train_languages", "eval_limit", "val_per_language", "robustness", "eval_batch_size")

    def _prepare(self, workdir) -> None:
        super()._prepare(workdir)
        self.has_pair = all("text_pair" in r for s in self.splits.values() for r in s)
        self.verbalizer = TaskVerbalizer(self)

    def training_pair(self, row: dict) -> tuple[str, str]:
        v = self.verbalizer
        cont = dict(zip(v.labels, v.continuations(row["lang"])))
        return v.prompt(row, row["text"]), cont[row["label"]]

    def choices(self, row: dict) -> tuple[list[str], int]:
        return list(self.verbalizer.continuations(row["lang"])), self.verbalizer.labels.index(row["label"])

    def calibration_rows(self, kept, shots, seed):
        """Validation rows per tuning language (`train_units`; an evaluation-only language borrows their
        temperature, `borrowed`); None when one has none."""
        langs = self.train_units
        if self.splits["validation"]:
            val = self.validation_rows()
        elif shots > 0:
            val = self.sample(kept, None, shots, seed).val
        else:
            val = [r[ROW] for r in validation_sample(self.pool(), set(), langs, self.settings.val_per_language,
                                                     seed, row_key)]
        by_lang = {lang: [r for r in val if r["lang"] == lang] for lang in langs}
        return by_lang if all(by_lang.values()) else None

    def evaluate(self, model, tokenizer, tests, *, seed, progress, calibration=None):
        from govtune.evaluation.xnli_eval import evaluate_classification  # here: the evaluators import torch

        c = self.settings
        metrics, preds = evaluate_classification(model, tokenizer, tests, verbalizer=self.verbalizer,
                                                 batch_size=c.eval_batch_size, robustness=c.robustness, seed=seed,
                                                 progress=progress, calibration=calibration,
                                                 borrowed=self.borrowed(tests, calibration))
        _add_f1_brier(metrics, preds, list(self.verbalizer.labels))
        return metrics, preds

    def intervals(self, predictions):
        from govtune.evaluation.bootstrap import classification_intervals  # here: the evaluators import torch

        return classification_intervals(predictions)


def _add_f1_brier(metrics: dict, preds: list[dict], labels: list[str]) -> None:
    """Macro-F1 and the Brier score per language (percent), and their means over languages."""
    from govtune.evaluation.metrics import macro_f1  # here: the evaluators import torch

    f1s, briers = {}, {}
    for lang, block in metrics["languages"].items():
        recs = [r for r in preds if r["language"] == lang and r.get("perturbation") is None]
        gold = [r["gold"] for r in recs]
        f1s[lang] = macro_f1([r["prediction"] for r in recs], gold, labels)
        probs = np.array([[r["probs"][lab] for lab in labels] for r in recs])
        onehot = np.array([[lab == g for lab in labels] for g in gold], dtype=float)
        briers[lang] = 100.0 * float(((probs - onehot) ** 2).sum(axis=1).mean())
        block.update(macro_f1=f1s[lang], brier=briers[lang])
    metrics["macro_f1"] = float(np.mean(list(f1s.values())))
    metrics["avg_brier"] = float(np.mean(list(briers.values())))
