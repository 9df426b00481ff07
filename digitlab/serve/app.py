"""`create_app`: the FastAPI application: the page, the JSON API and the Open Inference Protocol.

Every refusal is a 4xx whose body says why: ``{"detail": "..."}`` under ``/api``,
``{"error": "..."}`` under ``/v2`` (as the protocol asks). Inference and preprocessing are
CPU-bound NumPy and Pillow work: they run in the thread pool, never on the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path  # Swagger UI's files, so /docs works offline

from .. import __version__
from ..errors import DigitlabError, ImageError
from . import inputs
from .limits import MAX_BATCH, MAX_PIXELS, MAX_UPLOAD_BYTES, HTTPProblem, run_in_workers
from .oip import oip_router
from .schemas import (
    BatchInput,
    BatchResponse,
    Confusion,
    Health,
    ImageInput,
    ModelDetails,
    ModelList,
    PredictResponse,
)
from .store import ModelNotFound, ModelStore, ServedModel

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("digitlab.serve")

IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/gif", "image/webp", "application/octet-stream")
_ACCEPTED = "application/json, multipart/form-data (field 'file'), or an image body (" + ", ".join(IMAGE_TYPES) + ")"

_IMAGE_BODY = {"schema": {"type": "string", "format": "binary"}}


def _openapi_body(json_model, multipart: dict, images: bool) -> tuple[dict, dict]:
    """The request body of a route that reads several content types itself (for the OpenAPI
    schema), and the JSON model's schema to add to the components."""
    schema = json_model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{json_model.__name__}"}},
        "multipart/form-data": {"schema": multipart},
        **({t: _IMAGE_BODY for t in IMAGE_TYPES[:2]} if images else {}),
    }}}, {json_model.__name__: schema}


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
        docs_url=None,  # served below from local files instead of a CDN
        redoc_url=None,
        description="Handwritten digit recognition: a draw-a-digit page at `/`, a JSON API under "
                    "`/api`, and the Open Inference Protocol (KServe / Triton v2) under `/v2`.",
    )
    app.state.store = store
    app.add_middleware(BodyLimit, limit=MAX_UPLOAD_BYTES)
    _add_error_handlers(app)

    predict_body, predict_schemas = _openapi_body(ImageInput, {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}},
    }, images=True)
    batch_body, batch_schemas = _openapi_body(BatchInput, {
        "type": "object", "required": ["files"],
        "properties": {"files": {"type": "array", "maxItems": MAX_BATCH,
                                 "items": {"type": "string", "format": "binary"}}},
    }, images=False)
    refusals = {413: {"description": f"Body over {MAX_UPLOAD_BYTES // 2**20} MiB or image over "
                                     f"{MAX_PIXELS / 1e6:g} megapixels"},
                415: {"description": "Unsupported content type"},
                404: {"description": "Unknown model"},
                422: {"description": "Malformed body, not an image, or no digit found"}}

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="digitlab API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js", swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png")

    @app.get("/healthz", response_model=Health, response_model_exclude_none=True, tags=["health"],
             summary="Liveness: the process answers")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz", response_model=Health, tags=["health"],
             summary="Readiness: the models are loaded and can predict")
    def readyz():
        return {"status": "ready", "models": [m.name for m in store]}

    @app.get("/api/models", response_model=ModelList, tags=["models"], summary="The models this server holds")
    def list_models():
        return {"default": store.default,
                "models": [{**m.describe(), "default": m.name == store.default} for m in store]}

    @app.get("/api/models/{name}", response_model=ModelDetails, tags=["models"],
             summary="A model's architecture, training history and metrics", responses={404: refusals[404]})
    def model_details(name: str):
        served = store.get(name)
        return {**served.details(), "default": name == store.default}

    @app.get("/api/models/{name}/confusion", response_model=Confusion, tags=["models"],
             summary="Confusion matrix and most confident mistakes on the MNIST test set",
             description="Computed on first request (a few seconds) and cached. When the MNIST test "
                         "set is not on the server, `available` is false and `reason` says why.",
             responses={404: refusals[404]})
    def confusion(name: str):
        served = store.get(name)
        try:
            result = served.confusion(data_dir)
        except DigitlabError as e:  # MNIST is not on this machine: the page says so
            return {"model": name, "available": False, "reason": str(e)}
        mistakes = [{**m, "image": inputs.png_data_url(m["image"])} for m in result["misclassified"]]
        return {"model": name, "available": True, **result, "misclassified": mistakes}

    @app.post("/api/predict", response_model=PredictResponse, tags=["predict"],
              summary="Read one digit (or, with number=true, a number) from an image or 784 pixels",
              description="Send a PNG/JPEG file (multipart field `file`, or the raw body with an "
                          "image Content-Type), or JSON `{\"image\": base64}` or `{\"pixels\": [784 "
                          "values]}`. Images go through the same preprocessing as photos "
                          "(digitlab.vision); pixels go to the network as they are.",
              openapi_extra=predict_body, responses=refusals)
    async def predict(
        request: Request,
        model: str | None = Query(None, description="Model name (default: the server's default model)."),
        number: bool = Query(False, description="Split the image into digits and read them all."),
    ):
        start = time.perf_counter()
        served = store.get(model)
        source = await _read_one(request)
        return await run_in_workers(_predict, served, source, number, start)

    @app.post("/api/predict/batch", response_model=BatchResponse, tags=["predict"],
              summary=f"Read up to {MAX_BATCH} digits in one request",
              description="JSON `{\"items\": [{\"image\": base64} or {\"pixels\": [...]}, ...]}` or "
                          "multipart with several `files`. An item that cannot be read gets an "
                          "`error` and the others are still predicted.",
              openapi_extra=batch_body, responses=refusals)
    async def predict_batch(
        request: Request,
        model: str | None = Query(None, description="Model name (default: the server's default model)."),
    ):
        start = time.perf_counter()
        served = store.get(model)
        sources = await _read_batch(request)
        return await run_in_workers(_predict_batch, served, sources, start)

    app.include_router(oip_router(store))
    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_path), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def openapi():
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {})
            for extra in (predict_schemas, batch_schemas):
                for key, value in extra.items():
                    defs = value.pop("$defs", {})
                    schema["components"]["schemas"].update(defs)
                    schema["components"]["schemas"][key] = value
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


def app_from_environment() -> FastAPI:
    """`create_app` with the settings in ``$DIGITLAB_SERVE`` (JSON: ``models``, ``data_dir``): how
    each worker process of ``digitlab serve --workers N`` builds its app."""
    settings = json.loads(os.environ["DIGITLAB_SERVE"])
    return create_app(settings["models"], data_dir=settings.get("data_dir"))


# ------------------------------------------------------------------------------- reading bodies
def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _parse_json(body: bytes, model):
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise HTTPProblem(422, f"malformed JSON: {e}") from None
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        raise HTTPProblem(422, _validation_reason(e.errors())) from None


async def _form(request: Request, max_files: int):
    try:
        return await request.form(max_files=max_files, max_fields=16)
    except Exception as e:  # python-multipart / starlette: boundary missing, body cut short, too many parts
        detail = getattr(e, "detail", None) or str(e) or type(e).__name__
        raise HTTPProblem(422, f"malformed multipart body: {detail}") from None


def _source(item: ImageInput):
    """An `ImageInput` -> encoded bytes (to preprocess) or a uint8 28x28 array (pixels)."""
    return inputs.decode_base64(item.image) if item.image is not None else inputs.digit_from_pixels(item.pixels)


async def _read_one(request: Request):
    media = _media_type(request)
    if media == "application/json":
        return _source(_parse_json(await request.body(), ImageInput))
    if media == "multipart/form-data":
        form = await _form(request, max_files=1)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPProblem(422, "multipart body needs the image in a file field named 'file'")
        return await upload.read()
    if media in IMAGE_TYPES or media.startswith("image/"):
        return await request.body()
    raise HTTPProblem(415, f"unsupported content type {media or '(none)'!r}; send {_ACCEPTED}")


async def _read_batch(request: Request) -> list:
    media = _media_type(request)
    if media == "application/json":
        batch = _parse_json(await request.body(), BatchInput)
        sources = []
        for item in batch.items:
            try:
                sources.append(_source(item))
            except HTTPProblem as e:
                sources.append(e)  # a bad item is reported in its own result
        return sources
    if media == "multipart/form-data":
        form = await _form(request, max_files=MAX_BATCH)
        files = [f for f in form.getlist("files") if not isinstance(f, str)]
        if not files:
            raise HTTPProblem(422, "multipart body needs the images in file fields named 'files'")
        return [await f.read() for f in files]
    raise HTTPProblem(415, f"unsupported content type {media or '(none)'!r}; send application/json or "
                           "multipart/form-data")


# ------------------------------------------------------------------------------- predicting
def _result(probs: np.ndarray) -> dict:
    digit = int(probs.argmax())
    return {"digit": digit, "confidence": float(probs[digit]), "probabilities": [float(p) for p in probs]}


def _predict(served: ServedModel, source, number: bool, start: float) -> dict:
    if isinstance(source, np.ndarray):
        found = [(source, None)]
    elif number:
        found = inputs.digits_from_image(source)
    else:
        found = [(inputs.digit_from_image(source), None)]
    t = time.perf_counter()
    probs = served.predict_proba(np.stack([digit for digit, _ in found]))
    inference = time.perf_counter() - t
    results = [{**_result(p), "image": inputs.png_data_url(digit), "box": box} for p, (digit, box) in zip(probs, found)]
    out = {"model": served.name}
    if number:
        out.update(number="".join(str(r["digit"]) for r in results), digits=results)
    else:
        out.update({k: results[0][k] for k in ("digit", "confidence", "probabilities", "image")})
    return {**out, "latency_ms": (time.perf_counter() - start) * 1e3, "inference_ms": inference * 1e3}


def _predict_batch(served: ServedModel, sources: list, start: float) -> dict:
    digits, errors = {}, {}
    for i, source in enumerate(sources):
        try:
            if isinstance(source, HTTPProblem):
                raise source
            digits[i] = source if isinstance(source, np.ndarray) else inputs.digit_from_image(source)
        except HTTPProblem as e:
            errors[i] = e.reason
        except ImageError as e:
            errors[i] = str(e)
    inference = 0.0
    results = [{"error": errors.get(i)} for i in range(len(sources))]
    if digits:
        t = time.perf_counter()
        probs = served.predict_proba(np.stack(list(digits.values())))
        inference = time.perf_counter() - t
        for i, p in zip(digits, probs):
            results[i] = _result(p)
    return {"model": served.name, "results": results,
            "latency_ms": (time.perf_counter() - start) * 1e3, "inference_ms": inference * 1e3}


# ------------------------------------------------------------------------------- refusals
def _problem(request_path: str, status: int, reason: str) -> JSONResponse:
    key = "error" if request_path.startswith("/v2") else "detail"
    return JSONResponse({key: reason}, status_code=status)


def _validation_reason(errors) -> str:
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = len(errors) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPProblem)
    async def _http_problem(request: Request, exc: HTTPProblem):
        return _problem(request.url.path, exc.status, exc.reason)

    @app.exception_handler(DigitlabError)
    async def _digitlab_error(request: Request, exc: DigitlabError):
        status = 404 if isinstance(exc, ModelNotFound) else 400 if request.url.path.startswith("/v2") else 422
        return _problem(request.url.path, status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        status = 400 if request.url.path.startswith("/v2") else 422
        return _problem(request.url.path, status, _validation_reason(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        response = _problem(request.url.path, exc.status_code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response


class BodyLimit:
    """ASGI middleware: refuse a request body over ``limit`` bytes with 413, from its Content-Length
    when it has one and otherwise while reading it, before any route parses it."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self._refuse(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send):
        reason = f"request body over the limit of {self.limit // 2**20} MiB"
        response = _problem(scope.get("path", ""), 413, reason)
        response.headers["connection"] = "close"
        await response(scope, receive, send)
