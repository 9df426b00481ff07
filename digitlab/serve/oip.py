"""The Open Inference Protocol (KServe "v2" / Triton HTTP/REST), so existing clients can call digitlab.

Routes: ``GET /v2`` (server metadata), ``/v2/health/live``, ``/v2/health/ready``,
``/v2/models/{name}`` (model metadata), ``/v2/models/{name}/ready`` and
``POST /v2/models/{name}/infer``, each also under ``/v2/models/{name}/versions/1``. Errors are
``{"error": "..."}`` with 400 (bad request) or 404 (unknown model or version).

One input tensor of images, in any of these forms:

| datatype | shape | data |
|---|---|---|
| ``UINT8`` (or another integer type) | [N, 28, 28], [N, 784], [N, 28, 28, 1], [N, 1, 28, 28] | pixels 0..255, white ink on black (MNIST's convention), row-major, flat or nested |
| ``FP32`` / ``FP64`` / ``FP16`` | the same | intensities 0..1 (pixel / 255) |
| ``BYTES`` | [N] | encoded image files (PNG, JPEG, ...) in base64; preprocessed like uploads |

Outputs: ``probabilities`` (FP32 [N, 10]) and ``digit`` (INT64 [N]); a request may ask for one of
them with ``outputs: [{"name": ...}]``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from .. import __version__
from ..errors import DigitlabError
from . import inputs
from .limits import MAX_BATCH, run_in_workers
from .problems import HTTPProblem
from .store import ModelNotFound, ModelStore

VERSION = "1"
INTEGER_TYPES = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
FLOAT_TYPES = {"FP16", "FP32", "FP64"}
OUTPUTS = {"probabilities": ("FP32", [-1, 10]), "digit": ("INT64", [-1])}


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class InferInput(BaseModel):
    name: str
    shape: list[int] = Field(max_length=4)
    datatype: str
    data: list[Any]
    parameters: Optional[dict[str, Any]] = None


class RequestedOutput(BaseModel):
    name: str
    parameters: Optional[dict[str, Any]] = None


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Optional[str] = None
    inputs: list[InferInput] = Field(min_length=1)
    outputs: Optional[list[RequestedOutput]] = None
    parameters: Optional[dict[str, Any]] = None


class InferOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: Optional[str] = None
    outputs: list[InferOutput]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


_ERRORS = {400: {"description": "Bad request: {\"error\": reason}"},
           404: {"description": "Unknown model or version: {\"error\": reason}"}}


def oip_router(store: ModelStore) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (v2)"])

    def served(name: str, version: str | None = None):
        if version is not None and version != VERSION:
            raise ModelNotFound(f"model {name!r} has no version {version!r} (only {VERSION!r})")
        return store.get(name)

    @router.get("", response_model=ServerMetadata, summary="Server metadata")
    def server_metadata():
        return {"name": "digitlab", "version": __version__, "extensions": []}

    @router.get("/health/live", response_model=Live, summary="Server liveness")
    def live():
        return {"live": True}

    @router.get("/health/ready", response_model=Ready, summary="Server readiness")
    def ready():
        return {"ready": len(store) > 0}

    def metadata(name: str, version: str | None = None):
        model = served(name, version)
        return {
            "name": model.name,
            "versions": [VERSION],
            "platform": "digitlab_numpy",
            "inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, 28, 28]}],
            "outputs": [{"name": k, "datatype": t, "shape": s} for k, (t, s) in OUTPUTS.items()],
        }

    def model_ready(name: str, version: str | None = None):
        return {"name": served(name, version).name, "ready": True}

    async def infer(name: str, request: InferRequest, version: str | None = None):
        model = served(name, version)
        return await run_in_workers(_infer, model, request)

    for base in ("/models/{name}", "/models/{name}/versions/{version}"):
        router.add_api_route(base, metadata, methods=["GET"], response_model=ModelMetadata,
                             summary="Model metadata", responses=_ERRORS)
        router.add_api_route(base + "/ready", model_ready, methods=["GET"], response_model=ModelReady,
                             summary="Model readiness", responses=_ERRORS)
        router.add_api_route(base + "/infer", infer, methods=["POST"], response_model=InferResponse,
                             response_model_exclude_none=True, summary="Inference", responses=_ERRORS)
    return router


def _bad(reason: str) -> HTTPProblem:
    return HTTPProblem(400, reason)


def _infer(model, request: InferRequest) -> dict:
    if len(request.inputs) != 1:
        raise _bad(f"expected one input tensor of images, got {len(request.inputs)}")
    tensor = request.inputs[0]
    images = _images(tensor)
    wanted = [o.name for o in request.outputs] if request.outputs else list(OUTPUTS)
    unknown = [n for n in wanted if n not in OUTPUTS]
    if unknown:
        raise _bad(f"unknown output {unknown[0]!r}; this model has: {', '.join(OUTPUTS)}")
    probs = model.predict_proba(images)
    n = len(images)
    data = {"probabilities": probs.ravel().tolist(), "digit": probs.argmax(axis=1).tolist()}
    shapes = {"probabilities": [n, 10], "digit": [n]}
    return {
        "model_name": model.name,
        "model_version": VERSION,
        "id": request.id,
        "outputs": [{"name": k, "datatype": OUTPUTS[k][0], "shape": shapes[k], "data": data[k]} for k in wanted],
    }


def _images(tensor: InferInput) -> np.ndarray:
    """The input tensor as uint8 N x 28 x 28, or a 400 saying what is wrong with it."""
    datatype, shape = tensor.datatype.upper(), tensor.shape
    if any(s < 0 for s in shape):
        raise _bad(f"input {tensor.name!r}: shape {shape} has a negative dimension")
    if datatype == "BYTES":
        return _encoded_images(tensor)
    if datatype not in INTEGER_TYPES | FLOAT_TYPES:
        raise _bad(f"input {tensor.name!r}: datatype {tensor.datatype!r} is not supported; "
                   "send UINT8 (0..255), FP32 (0..1) or BYTES (base64 image files)")
    n = _batch_size(tensor.name, shape)
    try:
        values = np.asarray(tensor.data, dtype=np.float64).ravel()
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise _bad(f"input {tensor.name!r}: data must be numbers, flat or nested row-major lists of equal length") from None
    if values.size != n * 784:
        raise _bad(f"input {tensor.name!r}: shape {shape} needs {n * 784} values, data has {values.size}")
    if not np.isfinite(values).all():
        raise _bad(f"input {tensor.name!r}: data holds NaN or infinity")
    if datatype in FLOAT_TYPES:
        if values.size and (values.min() < 0 or values.max() > 1):
            raise _bad(f"input {tensor.name!r}: {datatype} pixels are intensities in 0..1 (pixel/255); got "
                       f"{values.min():g}..{values.max():g}. Send UINT8 for 0..255")
        values = values * 255
    elif values.size and (values.min() < 0 or values.max() > 255 or not np.all(values == np.floor(values))):
        raise _bad(f"input {tensor.name!r}: {datatype} pixels must be integers 0..255")
    return np.rint(values).astype(np.uint8).reshape(n, 28, 28)


def _batch_size(name: str, shape: list[int]) -> int:
    dims = tuple(shape)
    if dims in ((28, 28), (784,)):
        n = 1
    elif len(dims) >= 2 and dims[1:] in ((28, 28), (784,), (28, 28, 1), (1, 28, 28)):
        n = dims[0]
    else:
        raise _bad(f"input {name!r}: shape {list(shape)} is not images; use [N, 28, 28], [N, 784], "
                   "[N, 28, 28, 1] or [N, 1, 28, 28]")
    if not 1 <= n <= MAX_BATCH:
        raise _bad(f"input {name!r}: {n} images; send 1 to {MAX_BATCH} per request")
    return n


def _encoded_images(tensor: InferInput) -> np.ndarray:
    data = tensor.data
    if len(tensor.shape) != 1 or tensor.shape[0] != len(data):
        raise _bad(f"input {tensor.name!r}: BYTES takes shape [N] with N base64 image files; "
                   f"got shape {tensor.shape} and {len(data)} items")
    if not 1 <= len(data) <= MAX_BATCH:
        raise _bad(f"input {tensor.name!r}: {len(data)} images; send 1 to {MAX_BATCH} per request")
    digits = []
    for i, item in enumerate(data):
        if not isinstance(item, str):
            raise _bad(f"input {tensor.name!r}: item {i} is not a base64 string")
        try:
            digits.append(inputs.digit_from_image(inputs.decode_base64(item)))
        except HTTPProblem as e:
            status = 413 if e.status == 413 else 400
            raise HTTPProblem(status, f"input {tensor.name!r}, item {i}: {e.reason}") from None
        except DigitlabError as e:
            raise _bad(f"input {tensor.name!r}, item {i}: {e}") from None
    return np.stack(digits)

