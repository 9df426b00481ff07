"""``digitlab evaluate`` and ``digitlab compare``: thin shells over `digitlab.evaluate`,
`digitlab.plots` and `digitlab.report`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import evaluate as ev
from ..data import KINDS, SEVERITIES, corrupt_dataset
from ..errors import DigitlabError
from ..evaluate import percent
from ..modelfile import load_model
from ._ui import DataDir, Limit, console, err_console, writable


def _load(paths: List[Path], data_dir, limit: Optional[int]):
    """The models and the test set they share (the first ``limit`` images)."""
    models = [load_model(p) for p in paths]
    kinds = {m.metadata.get("training", {}).get("dataset", "mnist") for m in models}
    if len(kinds) > 1:
        raise DigitlabError(f"the models were trained on different datasets ({', '.join(sorted(kinds))}): "
                            "evaluate them separately")
    test = ev.test_set_for(models[0], data_dir)
    return models, (test[:limit] if limit else test)


def evaluate(
    models: List[Path] = typer.Argument(..., help="Model files (.npz); several are also evaluated as an ensemble."),
    report: Optional[Path] = typer.Option(None, "--report", help="Folder to write report.html, its figures and evaluation.json into."),
    corrupt: Optional[str] = typer.Option(None, "--corrupt", help=f"Evaluate on corrupted test images: {', '.join(KINDS)}."),
    severity: int = typer.Option(3, "--severity", min=1, max=5, help="Strength of --corrupt, 1 (mild) to 5 (harsh)."),
    robustness: bool = typer.Option(False, "--robustness", help="Accuracy under every corruption at every severity: a table and a plot (in the --report folder, else ./robustness.png)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0.0, max=1.0,
                                              help="Answer only when the top probability reaches P: print coverage and accuracy kept."),
    limit: Limit = None,
    seed: int = typer.Option(0, min=0, help="Seed of the corruptions."),
    data_dir: DataDir = None,
) -> None:
    """Score models on their test set: accuracy, loss, per class, confusion; report, robustness.

    Several models are also scored as an ensemble (their mean probability). --corrupt evaluates on corrupted test images, --robustness sweeps every corruption and severity, --threshold adds abstention, --report writes report.html with its figures.
    """
    if corrupt is not None and robustness:
        raise typer.BadParameter("give --corrupt or --robustness, not both", param_hint="--corrupt")
    writable(report, folder=True)
    if robustness and report is None:
        writable(Path("robustness.png"))
    loaded, test = _load(models, data_dir, limit)
    if corrupt is not None:
        test = corrupt_dataset(test, corrupt, severity, seed)
    evaluations = [ev.evaluate_model(m, test) for m in loaded]
    subject_model = loaded[0] if len(loaded) == 1 else ev.Ensemble(loaded)
    subject = evaluations[0] if len(loaded) == 1 else ev.evaluate_model(subject_model, test)

    table = Table(title=f"{test.name} ({len(test):,} images)", title_justify="left")
    columns = ["model", "recipe", "accuracy", "errors", "loss"]
    if threshold is not None:
        columns += [f"coverage (p ≥ {threshold:g})", "accuracy kept"]
    for name in columns:
        table.add_column(name, justify="left" if name in ("model", "recipe") else "right",
                         overflow="fold" if name == "model" else "ellipsis")
    rows = [(str(p), m.metadata.get("recipe", "—"), e) for p, m, e in zip(models, loaded, evaluations)]
    if len(loaded) > 1:
        rows.append((f"ensemble of {len(loaded)}", "mean probability", subject))
    for name, recipe, e in rows:
        cells = [name, recipe, percent(e.accuracy), f"{e.errors:,}", f"{e.loss:.4f}"]
        if threshold is not None:
            coverage, kept = e.abstain(threshold)
            cells += [percent(coverage), percent(kept)]
        table.add_row(*cells)
    console.print(table)
    what = str(models[0]) if len(loaded) == 1 else f"ensemble of {len(loaded)}"
    _print_per_class(subject, what)
    _print_confusion(subject, what)
    if subject.errors:
        top = ", ".join(f"#{i} {test.labels[i]}→{subject.predicted[i]} ({subject.confidence[i]:.0%})"
                        for i in subject.mistakes[:5])
        console.print(f"most confident mistakes (test index, true→predicted): {top}")

    result = None
    if robustness:
        result = _robustness(subject_model, test, seed)
        if report is None:
            from ..plots import robustness_figure

            console.print(f"wrote {robustness_figure(result, Path('robustness.png'))}")
    if report is not None:
        from ..report import ModelEntry, write_report

        entries = [ModelEntry(str(p), m, e) for p, m, e in zip(models, loaded, evaluations)]
        page = write_report(report, subject, entries, robustness=result, threshold=threshold)
        figures = sorted(p.name for p in page.parent.glob("*.png"))
        console.print(f"wrote {page} with {', '.join(figures)}")


def _print_per_class(e: ev.Evaluation, what: str) -> None:
    table = Table(title=f"per class: {what}", title_justify="left")
    for name in ("class", "precision", "recall", "F1", "support"):
        table.add_column(name, justify="right")
    r = e.report
    for c in range(len(r.support)):
        table.add_row(str(c), percent(r.precision[c]), percent(r.recall[c]), percent(r.f1[c]), f"{r.support[c]:,}")
    m = r.macro
    table.add_row("macro", percent(m["precision"]), percent(m["recall"]), percent(m["f1"]), f"{r.support.sum():,}", style="bold")
    console.print(table)


def _print_confusion(e: ev.Evaluation, what: str) -> None:
    k = len(e.confusion)
    table = Table(title=f"confusion matrix: {what} (rows: true, columns: predicted)", title_justify="left")
    table.add_column("", justify="right", style="bold")
    for p in range(k):
        table.add_column(str(p), justify="right")
    for t in range(k):
        table.add_row(str(t), *(f"[bold]{n:,}[/]" if t == p else (f"[red]{n:,}[/]" if n else "·")
                                for p, n in enumerate(e.confusion[t])))
    console.print(table)


def _robustness(model, test, seed) -> ev.Robustness:
    steps = len(KINDS) * len(SEVERITIES)
    with Progress(TextColumn("robustness {task.fields[what]:12s}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as progress:
        task = progress.add_task("", total=steps, what="")
        result = ev.robustness(model, test, seed=seed,
                               on_step=lambda kind, s: progress.update(task, advance=1, what=f"{kind} {s}"))
    table = Table(title=f"accuracy under corruptions (clean {percent(result.clean)}, mean {percent(result.mean)})",
                  title_justify="left")
    table.add_column("corruption")
    for s in result.severities:
        table.add_column(f"severity {s}", justify="right")
    for kind in result.kinds:
        table.add_row(kind, *map(percent, result.accuracy[kind]))
    console.print(table)
    return result


def compare(
    model_a: Path = typer.Argument(..., help="First model file (.npz)."),
    model_b: Path = typer.Argument(..., help="Second model file (.npz)."),
    out: Path = typer.Option(Path("disagreements.png"), "--out", "-o", help="PNG of the test images where they disagree."),
    n: int = typer.Option(50, "--n", min=1, max=500, help="How many disagreements to draw at most."),
    limit: Limit = None,
    data_dir: DataDir = None,
) -> None:
    """Two models side by side on the same test set, and the images where they disagree.

    Prints both models' metrics, how often each is right where the other is wrong (with McNemar's exact test) and writes a PNG of the images on which their predictions differ.
    """
    writable(out)
    (a, b), test = _load([model_a, model_b], data_dir, limit)
    result = ev.compare(a, b, test)
    table = Table(title=f"{test.name} ({len(test):,} images)", title_justify="left")
    console.print(f"A: {model_a}\nB: {model_b}", highlight=False, soft_wrap=True)
    table.add_column("")
    table.add_column("A", justify="right")
    table.add_column("B", justify="right")
    ea, eb = result.a, result.b
    table.add_row("recipe", a.metadata.get("recipe", "—"), b.metadata.get("recipe", "—"))
    table.add_row("accuracy", percent(ea.accuracy), percent(eb.accuracy))
    table.add_row("errors", f"{ea.errors:,}", f"{eb.errors:,}")
    table.add_row("loss", f"{ea.loss:.4f}", f"{eb.loss:.4f}")
    for key, label in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
        table.add_row(f"macro {label}", percent(ea.report.macro[key]), percent(eb.report.macro[key]))
    for c in range(len(ea.report.support)):
        table.add_row(f"F1 of {c}", percent(ea.report.f1[c]), percent(eb.report.f1[c]))
    table.add_row("right where the other is wrong", f"{result.only_a:,}", f"{result.only_b:,}")
    console.print(table)
    console.print(f"they disagree on {len(result.disagree):,} images; McNemar exact p = {result.p_value:.3g}"
                  + (" (the difference in accuracy could be chance)" if result.p_value >= 0.05 else ""))
    if len(result.disagree) == 0:
        console.print("no disagreements: nothing to draw")
        return
    from ..plots import sample_grid

    chosen = result.disagree[:n]
    captions = [f"#{i} true {test.labels[i]}\nA {ea.predicted[i]}  B {eb.predicted[i]}" for i in chosen]
    path = sample_grid(test.images[chosen], test.labels[chosen], out, cols=min(10, len(chosen)), captions=captions,
                       title=f"{len(chosen)} of {len(result.disagree):,} disagreements (A: {model_a.name}, B: {model_b.name})")
    console.print(f"wrote {path}")
