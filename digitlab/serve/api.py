"""The JSON API: health, the models, and predictions under ``/api`` (`api_router`).

A prediction goes through the library, as ``digitlab predict`` does: `digitlab.vision.read` for
an image (one digit, or a number with ``number=true``), `read_digits` for 784 pixels, which are
MNIST-like already. The batch route preprocesses each image with `inputs.digit_from_image` and
predicts them together. Preprocessing and inference are CPU-bound NumPy and Pillow work: they run
in the worker threads (`run_in_workers`), never on the event loop.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from fastapi import APIRouter, Query, Request

from ..data.mnist import FILES, find_mnist
from ..errors import DataError, DigitlabError, ImageError
from ..vision import read, read_digits
from . import inputs
from .limits import MAX_BATCH, run_in_workers
from .openapi import BATCH_BODY, PREDICT_BODY, REFUSALS
from .problems import HTTPProblem
from .schemas import BatchResponse, Confusion, Health, ModelDetails, ModelList, PredictResponse
from .store import ModelStore, ServedModel

log = logging.getLogger("digitlab.serve")
_MODEL = Query(None, description="Model name (default: the server's default model).")


def api_router(store: ModelStore, data_dir=None) -> APIRouter:
    """The routes over ``store``; ``data_dir`` is where the confusion view finds MNIST's test set."""
    router = APIRouter()

    @router.get("/healthz", response_model=Health, response_model_exclude_none=True, tags=["health"],
                summary="Liveness: the process answers")
    def healthz():
        return {"status": "ok"}

    @router.get("/readyz", response_model=Health, tags=["health"],
                summary="Readiness: the models are loaded and can predict")
    def readyz():
        return {"status": "ready", "models": [m.name for m in store]}

    @router.get("/api/models", response_model=ModelList, tags=["models"], summary="The models this server holds")
    def list_models():
        return {"default": store.default,
                "models": [{**m.describe(), "default": m.name == store.default} for m in store]}

    @router.get("/api/models/{name}", response_model=ModelDetails, tags=["models"],
                summary="A model's architecture, training history and metrics", responses={404: REFUSALS[404]})
    def model_details(name: str):
        return {**store.get(name).details(), "default": name == store.default}

    @router.get("/api/models/{name}/confusion", response_model=Confusion, tags=["models"],
                summary="Confusion matrix and most confident mistakes on the MNIST test set",
                description="Computed on first request (a few seconds) and cached. When the MNIST test "
                            "set is not on the server, `available` is false and `reason` says why.",
                responses={404: REFUSALS[404]})
    def confusion(name: str):
        served = store.get(name)
        try:
            result = served.confusion(data_dir)
        except DigitlabError as e:  # MNIST is not on this machine: the page says so, the log says where
            log.warning("confusion view of %r unavailable: %s", name, e)
            return {"model": name, "available": False, "reason": _mnist_unavailable(data_dir)}
        mistakes = [{**m, "image": inputs.png_data_url(m["image"])} for m in result["misclassified"]]
        return {"model": name, "available": True, **result, "misclassified": mistakes}

    @router.post("/api/predict", response_model=PredictResponse, tags=["predict"],
                 summary="Read one digit (or, with number=true, a number) from an image or 784 pixels",
                 description="Send a PNG/JPEG file (multipart field `file`, or the raw body with an "
                             "image Content-Type), or JSON `{\"image\": base64}` or `{\"pixels\": [784 "
                             "values]}`. Images go through the same preprocessing as photos "
                             "(digitlab.vision); pixels go to the network as they are. `answer` is what "
                             "`digitlab predict` prints for the same image and threshold.",
                 openapi_extra=PREDICT_BODY, responses=REFUSALS)
    async def predict(
        request: Request,
        model: str | None = _MODEL,
        number: bool = Query(False, description="Split the image into digits and read them all."),
        threshold: float = Query(0.0, ge=0, le=1, description="Answer '?' for a digit whose top "
                                 "probability is below this (as `digitlab predict --threshold`)."),
    ):
        start = time.perf_counter()
        served = store.get(model)
        source = await inputs.read_one(request)
        return await run_in_workers(_predict, served, source, number, threshold, start)

    @router.post("/api/predict/batch", response_model=BatchResponse, tags=["predict"],
                 summary=f"Read up to {MAX_BATCH} digits in one request",
                 description="JSON `{\"items\": [{\"image\": base64} or {\"pixels\": [...]}, ...]}` or "
                             "multipart with several `files`. An item that cannot be read gets an "
                             "`error` and the others are still predicted.",
                 openapi_extra=BATCH_BODY, responses=REFUSALS)
    async def predict_batch(request: Request, model: str | None = _MODEL):
        start = time.perf_counter()
        served = store.get(model)
        sources = await inputs.read_batch(request)
        return await run_in_workers(_predict_batch, served, sources, start)

    return router


def _mnist_unavailable(data_dir) -> str:
    """Why the confusion view cannot be made, without the server's paths (a client has no use for
    them; the server's log has them)."""
    try:
        found = find_mnist(data_dir) is not None
    except DataError:  # a folder named explicitly lacks a file
        found = False
    if found:
        return "the MNIST files on the server could not be read (the server's log says why)"
    names = ", ".join(f"{stem}.gz" for pair in FILES.values() for stem in pair)
    return (f"missing MNIST files on the server: the confusion view needs all four ({names}); "
            "start the server with --data-dir naming the folder that holds them")


class _Timed:
    """A model that adds up the time spent in its ``predict_proba``: a request's ``inference_ms``."""

    def __init__(self, model):
        self.model, self.seconds = model, 0.0

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.model.predict_proba(images)
        finally:
            self.seconds += time.perf_counter() - start


def _result(probs: np.ndarray) -> dict:
    digit = int(probs.argmax())
    return {"digit": digit, "confidence": float(probs[digit]), "probabilities": [float(p) for p in probs]}


def _timings(start: float, model: _Timed) -> dict:
    return {"latency_ms": (time.perf_counter() - start) * 1e3, "inference_ms": model.seconds * 1e3}


def _predict(served: ServedModel, source, number: bool, threshold: float, start: float) -> dict:
    model = _Timed(served)
    if isinstance(source, np.ndarray):
        reading = read_digits(model, source[None], threshold)
    else:
        reading = inputs.with_image(source, lambda data: read(model, data, number, threshold))
    boxes = [None] * len(reading.digits) if reading.boxes is None else reading.boxes.tolist()
    found = [{**_result(p), "image": inputs.png_data_url(d), "box": box}
             for p, d, box in zip(reading.probabilities, reading.digits, boxes)]
    if number:
        shown = {"number": "".join(str(r["digit"]) for r in found), "digits": found}
    else:
        shown = {k: found[0][k] for k in ("digit", "confidence", "probabilities", "image", "box")}
    return {"model": served.name, **shown, "answer": reading.text, **_timings(start, model)}


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
    model = _Timed(served)
    results = [{"error": errors.get(i)} for i in range(len(sources))]
    if digits:
        for i, probs in zip(digits, model.predict_proba(np.stack(list(digits.values())))):
            results[i] = _result(probs)
    return {"model": served.name, "results": results, **_timings(start, model)}
