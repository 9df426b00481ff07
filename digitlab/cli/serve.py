"""``digitlab serve``: the draw-a-digit page and the HTTP API."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from ..errors import DigitlabError
from ._ui import console

DEFAULT_DIR = Path("models")
SETTINGS_VARIABLE = "DIGITLAB_SERVE"  # read by digitlab.serve.app.app_from_environment


def serve(
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A model file (.npz) to serve."),
    models_dir: Optional[Path] = typer.Option(None, help="Serve every model file in this folder (default: ./models)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    data_dir: Optional[Path] = typer.Option(None, help="Folder with the MNIST files, for the confusion view."),
    workers: int = typer.Option(1, min=1, help="Server processes; each loads the models. Up to one per core."),
) -> None:
    """Serve the draw-a-digit page at / and the JSON API (OpenAPI at /docs) with uvicorn.

    The server's limits (body sizes, time allowed to clients and to each request's work, connections)
    are in digitlab.serve.limits; they hold in each process.
    """
    if model is not None and models_dir is not None:
        raise typer.BadParameter("give --model or --models-dir, not both", param_hint="--model")
    try:
        import uvicorn
        from threadpoolctl import threadpool_limits

        from ..serve import create_app
        from ..serve.limits import UVICORN_SETTINGS
    except ImportError as e:
        raise DigitlabError(f"the web server needs its extra ({e.name} is missing): pip install 'digitlab[web]'") from None
    # One image at a time gains nothing from a multi-threaded BLAS, and its threads, spinning
    # beside the request threads on a small machine, cut the throughput to a third.
    threadpool_limits(1, user_api="blas")
    source = model or models_dir or DEFAULT_DIR
    app = create_app(source, data_dir=data_dir)  # every model loaded and checked here, not in a worker
    names = ", ".join(m.name for m in app.state.store)
    processes = f" in {workers} processes" if workers > 1 else ""
    console.print(f"serving {names} on [bold]http://{host}:{port}/[/]{processes} (API: /docs); Ctrl+C stops")
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="warning", **UVICORN_SETTINGS)
        return
    # Each worker process imports the factory and builds its own app from these settings.
    os.environ[SETTINGS_VARIABLE] = json.dumps({"models": str(source), "data_dir": data_dir and str(data_dir)})
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # the workers' BLAS, as above
    del app
    uvicorn.run("digitlab.serve.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                log_level="warning", **UVICORN_SETTINGS)
