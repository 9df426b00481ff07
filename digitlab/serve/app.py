"""`create_app`: the FastAPI application: the page, the JSON API and the Open Inference Protocol.

What each part holds: `store` the models, `api` the JSON routes (health, models, predictions),
`oip` the Open Inference Protocol under ``/v2``, `inputs` request bodies and images, `limits`
what a request may hold, `problems` the refusals, `openapi` the schema and ``/docs``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from .. import __version__
from . import openapi
from .api import api_router
from .limits import BodyLimit
from .oip import oip_router
from .problems import add_error_handlers
from .store import ModelStore

STATIC = Path(__file__).parent / "static"


def create_app(models, *, default: str | None = None, data_dir=None) -> FastAPI:
    """The web app serving ``models``.

    Args:
        models: a model file, a folder of model files (``*.npz``), or a mapping name -> model file
            or `Sequential`. All are loaded now: a bad file raises `ModelError` here, not later.
        default: the model used when a request names none (default: the first).
        data_dir: where to find the MNIST test set for the confusion view (as `load_mnist`; the
            server never downloads it).
    """
    store = ModelStore(models, default)
    app = FastAPI(
        title="digitlab",
        version=__version__,
        docs_url=None,  # openapi.docs_router serves it from local files instead of a CDN
        redoc_url=None,
        description="Handwritten digit recognition: a draw-a-digit page at `/`, a JSON API under "
                    "`/api`, and the Open Inference Protocol (KServe / Triton v2) under `/v2`.",
    )
    app.state.store = store
    app.add_middleware(BodyLimit)
    add_error_handlers(app)

    app.add_api_route("/", index, include_in_schema=False)
    app.include_router(api_router(store, data_dir))
    app.include_router(oip_router(store))
    app.include_router(openapi.docs_router)
    app.mount(openapi.SWAGGER, StaticFiles(directory=swagger_ui_path), name="swagger")  # before /static
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.openapi = lambda: openapi.schema(app)
    return app


def index() -> FileResponse:
    """The page."""
    return FileResponse(STATIC / "index.html", media_type="text/html")


def app_from_environment() -> FastAPI:
    """`create_app` with the settings in ``$DIGITLAB_SERVE`` (JSON: ``models``, ``data_dir``): how
    each worker process of ``digitlab serve --workers N`` builds its app."""
    settings = json.loads(os.environ["DIGITLAB_SERVE"])
    return create_app(settings["models"], data_dir=settings.get("data_dir"))
