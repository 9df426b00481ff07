"""`create_app`: the FastAPI application: the page, the JSON API and the Open Inference Protocol.

What each part holds: `store` the models, `api` the JSON routes (health, models, predictions),
`oip` the Open Inference Protocol under ``/v2``, `inputs` request bodies and images, `limits`
what a request may hold, `problems` the refusals, `openapi` the schema and ``/docs``.

Every response says what a browser may do with it (`SecurityHeaders`): not guess its type, not
show it in a frame, and, for the page, load scripts, styles and data only from this server
(`PAGE_POLICY`; ``/docs`` sets its own, `openapi.DOCS_POLICY`).
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
    app.add_middleware(SecurityHeaders)  # the outermost: on every response, refusals included
    add_error_handlers(app)

    app.add_api_route("/", index, methods=["GET", "HEAD"], include_in_schema=False)
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


# The page (static/index.html, app.js, style.css) has no inline script or style; it fetches this
# server's API and shows PNGs as data: URLs (the images the network saw) and a data: SVG favicon.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'")


class SecurityHeaders:
    """ASGI middleware: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and a
    Content-Security-Policy (`PAGE_POLICY`, unless the response has its own) on every response."""

    HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"))

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [h for h in self.HEADERS if h[0] not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", PAGE_POLICY.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def app_from_environment() -> FastAPI:
    """`create_app` with the settings in ``$DIGITLAB_SERVE`` (JSON: ``models``, ``data_dir``): how
    each worker process of ``digitlab serve --workers N`` builds its app."""
    settings = json.loads(os.environ["DIGITLAB_SERVE"])
    return create_app(settings["models"], data_dir=settings.get("data_dir"))
