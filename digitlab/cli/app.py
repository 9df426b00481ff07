"""The typer application: the root command and its sub-command groups."""

from __future__ import annotations

import typer

from ._ui import console, err_console  # noqa: F401  (re-exported for main)

app = typer.Typer(
    name="digitlab",
    help="Recognise handwritten digits with neural networks you can read, train, inspect and deploy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

from . import data, evaluate, export, predict, reproduce, serve, train  # noqa: E402

app.add_typer(data.app, name="data")
app.command()(train.train)
app.command()(evaluate.evaluate)
app.command()(predict.predict)
app.command()(reproduce.reproduce)
app.command()(evaluate.compare)
app.command()(serve.serve)
app.command()(export.export)
