"""An evaluation report: one folder holding ``report.html``, the figures it shows (PNG) and the
numbers behind them (``evaluation.json``).

The page is plain HTML with inline CSS: no script, no font or style sheet from the network. It
links only files written into the same folder, by relative path, so the folder can be moved,
zipped or opened offline as it is.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import plots
from ._files import atomic_write, jsonable, make_folder
from .errors import DigitlabError
from .evaluate import Evaluation, Robustness, percent

THRESHOLDS = (0.5, 0.9, 0.99, 0.999)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
td.diag { font-weight: bold; background: #e8f0fb; } td.miss { color: #b00020; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
.note { color: #666; font-size: 0.9em; }
"""


@dataclass
class ModelEntry:
    """One model in a report: its name (file path), the network and its evaluation."""

    name: str
    model: object
    evaluation: Evaluation


def _num(x, fmt="{:.4f}") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _table(header: Sequence[str], rows: Sequence[Sequence], left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are left-aligned. Cells are escaped unless they
    are given as ("raw html", css class)."""
    def cell(tag, value, i):
        cls = "l" if i < left else ""
        if isinstance(value, tuple):
            value, extra = value
            cls = f"{cls} {extra}".strip()
        else:
            value = html.escape(str(value))
        return f'<{tag}{f" class={cls!r}" if cls else ""}>{value}</{tag}>'

    head = "".join(cell("th", h, i) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", v, i) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(path: Path, alt: str) -> str:
    return f'<img src="{html.escape(path.name)}" alt="{html.escape(alt)}">'


def write_report(
    out_dir: str | os.PathLike,
    subject: Evaluation,
    models: Sequence[ModelEntry] = (),
    *,
    title: str | None = None,
    robustness: Robustness | None = None,
    threshold: float | None = None,
    mistakes: int = 40,
) -> Path:
    """Write ``report.html``, its figures and ``evaluation.json`` into ``out_dir``; returns the
    path of ``report.html``.

    ``subject`` is the evaluation the detailed sections describe (per class, confusion matrix,
    most confident mistakes, abstention): a single model's, or an ensemble's. ``models`` lists the
    models behind it, each getting a summary row, its training curves and its first-layer weights.
    ``robustness`` adds the corruption table and plot; ``threshold`` adds a row to the abstention
    table. Figures that cannot be drawn (a model saved without history) are replaced by a note.
    """
    out = make_folder(out_dir)
    data = subject.dataset
    title = title or f"digitlab evaluation: {', '.join(m.name for m in models) or data.name}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p>{html.escape(data.name)}: {len(data):,} images'
             f'{f" ({html.escape(data.source)})" if data.source else ""}.</p>']

    # Summary: one row per model, plus the ensemble when there are several.
    rows = [(m.name, m.model.metadata.get("recipe", "—"), percent(m.model.metadata.get("published_accuracy")),
             percent(m.evaluation.accuracy), f"{m.evaluation.errors:,}", _num(m.evaluation.loss)) for m in models]
    if len(models) != 1:
        rows.append((f"ensemble of {len(models)}" if models else data.name, "mean probability" if models else "—",
                     "—", percent(subject.accuracy), f"{subject.errors:,}", _num(subject.loss)))
    parts += ["<h2>Summary</h2>",
              _table(["model", "recipe", "published", "accuracy", "errors", "loss"], rows, left=2)]

    report = subject.report
    macro = report.macro
    per_class = [(c, percent(report.precision[c]), percent(report.recall[c]), percent(report.f1[c]), f"{report.support[c]:,}")
                 for c in range(len(report.support))]
    per_class.append(("macro average", percent(macro["precision"]), percent(macro["recall"]), percent(macro["f1"]),
                      f"{int(report.support.sum()):,}"))
    parts += ["<h2>Per class</h2>", _table(["class", "precision", "recall", "F1", "support"], per_class),
              '<p class="note">— : undefined (a class never predicted has no precision).</p>']

    confusion_png = plots.confusion_figure(subject.confusion, out / "confusion.png", title=f"confusion matrix, {data.name}")
    k = len(subject.confusion)
    confusion_rows = [[str(t)] + [(f"{subject.confusion[t, p]:,}" if subject.confusion[t, p] else "",
                                   "diag" if t == p else ("miss" if subject.confusion[t, p] else ""))
                                  for p in range(k)] for t in range(k)]
    parts += ["<h2>Confusion matrix</h2>", '<p class="note">Rows: true class; columns: predicted.</p>',
              _table(["true \\ predicted", *map(str, range(k))], confusion_rows), _img(confusion_png, "confusion matrix")]

    parts.append("<h2>Most confident mistakes</h2>")
    chosen = subject.mistakes[:mistakes]
    if len(chosen):
        gallery = plots.mistakes_gallery(data.images[chosen], data.labels[chosen], subject.predicted[chosen],
                                         subject.confidence[chosen], out / "mistakes.png",
                                         title=f"{len(chosen)} most confident mistakes of {subject.errors:,}")
        parts += ['<p class="note">Each: true → predicted, and the probability given to the wrong answer.</p>',
                  _img(gallery, "most confident mistakes")]
    else:
        parts.append('<p class="note">No mistakes.</p>')

    thresholds = sorted(set(THRESHOLDS) | ({threshold} if threshold is not None else set()))
    abstention = [(f"{t:g}", percent(c), percent(a)) for t in thresholds for c, a in [subject.abstain(t)]]
    parts += ["<h2>Abstention</h2>",
              '<p class="note">Answer only when the top probability reaches the threshold: the share of '
              'images answered, and the accuracy of those answers.</p>',
              _table(["threshold", "coverage", "accuracy kept"], abstention)]

    if robustness is not None:
        figure = plots.robustness_figure(robustness, out / "robustness.png")
        rob_rows = [(kind, *map(percent, robustness.accuracy[kind])) for kind in robustness.kinds]
        parts += ["<h2>Robustness</h2>",
                  f'<p class="note">Accuracy under generated corruptions (clean: {percent(robustness.clean)}; '
                  f'mean over all: {percent(robustness.mean)}).</p>',
                  _table(["corruption", *(f"severity {s}" for s in robustness.severities)], rob_rows),
                  _img(figure, "accuracy under corruptions")]

    for i, m in enumerate(models, 1):
        suffix = f"-{i}" if len(models) > 1 else ""
        parts.append(f"<h2>Model {html.escape(m.name)}</h2>")
        meta = m.model.metadata
        training = meta.get("training", {})
        facts = [("recipe", meta.get("recipe", "—")), ("parameters", f"{m.model.num_params:,}"),
                 *((key, training[key]) for key in ("dataset", "epochs", "batch_size", "lr", "seed", "train_images", "seconds")
                   if key in training)]
        parts.append(_table(["", ""], facts, left=2))
        for name, stem, draw in (("training curves", "curves", lambda p: plots.training_curves(m.model.history.epochs, p)),
                                 ("first-layer weights", "weights", lambda p: plots.first_layer_weights(m.model, p))):
            try:
                path = draw(out / f"{stem}{suffix}.png")
            except DigitlabError as e:
                parts.append(f'<p class="note">No {name}: {html.escape(str(e))}.</p>')
            else:
                parts.append(_img(path, name))

    summary = {
        "dataset": data.name, "images": len(data), "accuracy": subject.accuracy, "loss": subject.loss,
        "errors": subject.errors, "per_class": report.rows(), "macro": macro,
        "confusion": subject.confusion, "abstention": [{"threshold": t, "coverage": c, "accuracy": a}
                                                       for t in thresholds for c, a in [subject.abstain(t)]],
        "models": [{"name": m.name, "recipe": m.model.metadata.get("recipe"), "accuracy": m.evaluation.accuracy,
                    "loss": m.evaluation.loss} for m in models],
    }
    if robustness is not None:
        summary["robustness"] = {"clean": robustness.clean, "severities": robustness.severities,
                                 "accuracy": robustness.accuracy}
    with atomic_write(out / "evaluation.json", "w") as f:
        json.dump(jsonable(summary), f, indent=1, allow_nan=False)
    parts.append('<p class="note">The numbers: <a href="evaluation.json">evaluation.json</a>.</p>')

    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
    path = out / "report.html"
    with atomic_write(path, "w") as f:
        f.write(page)
    return path
