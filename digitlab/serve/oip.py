"""The Open Inference Protocol (KServe "v2" / Triton HTTP/REST), so existing clients can call digitlab.

Routes: ``GET /v2`` (server metadata), ``/v2/health/live``, ``/v2/health/ready``,
``/v2/models/{name}`` (model metadata), ``/v2/models/{name}/ready`` and
``POST /v2/models/{name}/infer``, each also under ``/v2/models/{name}/versions/1``. Errors are
``{"error": "..."}`` with 400 (bad request) or 404 (unknown model or version); a body over the
limit is a 413 (`limits.BodyLimit`).

One input tensor of images, in any of these forms:

| datatype | shape | data |
|---|---|---|
| ``UINT8`` (or another integer type) | [N, 28, 28], [N, 784], [N, 28, 28, 1], [N, 1, 28, 28] | pixels 0..255, white ink on black (MNIST's convention), row-major, flat or nested |
| ``FP32`` / ``FP64`` / ``FP16`` | the same | intensities 0..1 (pixel / 255) |
| ``BYTES`` | [N] | encoded image files (PNG, JPEG, ...): base64 strings in JSON, raw bytes as binary data; preprocessed like uploads |

Outputs: ``probabilities`` (FP32 [N, 10]) and ``digit`` (INT64 [N]); a request may ask for one of
them with ``outputs: [{"name": ...}]``.

The body is read as JSON whatever its Content-Type (Triton's client sends none), and the server
has the binary tensor data extension (as Triton and KServe specify it, and as ``tritonclient``
uses it by default):

- Request: with an ``Inference-Header-Content-Length: N`` header, the first N bytes of the body
  are the JSON request and the rest is binary tensor data. An input whose
  ``parameters.binary_data_size`` is given has no ``data``: its values are that many bytes of the
  binary part, little-endian and row-major (a BYTES element is a 4-byte little-endian length and
  then its bytes). The sizes must account for every byte.
- Response: an output is binary when its request says ``parameters: {"binary_data": true}``, or
  when the request's ``parameters: {"binary_data_output": true}`` and the output does not say
  otherwise. A binary output has ``parameters: {"binary_data_size": n}`` and no ``data``; its
  bytes follow the JSON in the order of the outputs, and the response's
  ``Inference-Header-Content-Length`` header gives the length of the JSON.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import __version__
from ..errors import DigitlabError
from . import inputs
from .limits import MAX_BATCH, run_in_workers
from .openapi import REFUSALS
from .problems import HTTPProblem, validation_reason
from .store import ModelNotFound, ModelStore

VERSION = "1"
EXTENSIONS = ["binary_tensor_data"]
# The numeric datatypes and their layout as binary tensor data: little-endian, native size.
DTYPES = {"UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
          "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
          "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}
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
    shape: list[int] = Field(min_length=1, max_length=4)
    datatype: str = Field(min_length=1)
    data: list[Any] | None = Field(None, description="The values, flat or nested; absent when "
                                      "`parameters.binary_data_size` is given.")
    parameters: dict[str, Any] | None = Field(None, description="`binary_data_size`: the input's "
                                                 "bytes in the binary part of the body.")


class RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = Field(None, description="`binary_data`: true to have "
                                                 "this output as binary data.")


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    inputs: list[InferInput] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None
    parameters: dict[str, Any] | None = Field(None, description="`binary_data_output`: true to "
                                                 "have every output as binary data.")


class InferOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[InferOutput]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


def _inline(schema: dict) -> dict:
    """A JSON schema with its ``$defs`` written in place of each ``$ref``: ``openapi_extra`` is
    copied into the OpenAPI schema as it is, where ``#/$defs/...`` would point nowhere."""
    defs = schema.pop("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


_BINARY = {"schema": {"type": "string", "format": "binary"}}
INFER_BODY = {"requestBody": {
    "required": True,
    "description": "The JSON request (any Content-Type, or none). With the binary tensor data "
                   "extension, the JSON is the first `Inference-Header-Content-Length` bytes of the "
                   "body and the inputs' binary data follows it.",
    "content": {"application/json": {"schema": _inline(InferRequest.model_json_schema())},
                "application/octet-stream": _BINARY},
}}
_JSON_LENGTH = Header(None, ge=0, description="Binary tensor data extension: the length of the JSON "
                                              "request at the start of the body; binary data follows.")
_ERRORS = {400: {"description": "Bad request: {\"error\": reason}"},
           404: {"description": "Unknown model or version: {\"error\": reason}"}}
_INFER_RESPONSES = {
    200: {"description": "The outputs: JSON, or with binary outputs the JSON (its length in the "
                         "`Inference-Header-Content-Length` header) followed by their bytes.",
          "content": {"application/octet-stream": _BINARY}},
    **_ERRORS,
    **{status: REFUSALS[status] for status in (408, 413, 503)},
}


def oip_router(store: ModelStore) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (v2)"])

    def served(name: str, version: str | None = None):
        if version is not None and version != VERSION:
            raise ModelNotFound(f"model {name!r} has no version {version!r} (only {VERSION!r})")
        return store.get(name)

    @router.get("", response_model=ServerMetadata, summary="Server metadata")
    def server_metadata():
        return {"name": "digitlab", "version": __version__, "extensions": EXTENSIONS}

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

    async def infer(request: Request, name: str, version: str | None = None,
                    inference_header_content_length: int | None = _JSON_LENGTH):
        model = served(name, version)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            raise _bad(f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
        body = await request.body()
        return await run_in_workers(_infer, model, body, inference_header_content_length)

    for base in ("/models/{name}", "/models/{name}/versions/{version}"):
        router.add_api_route(base, metadata, methods=["GET"], response_model=ModelMetadata,
                             summary="Model metadata", responses=_ERRORS)
        router.add_api_route(base + "/ready", model_ready, methods=["GET"], response_model=ModelReady,
                             summary="Model readiness", responses=_ERRORS)
        router.add_api_route(base + "/infer", infer, methods=["POST"], response_model=InferResponse,
                             summary="Inference", openapi_extra=INFER_BODY, responses=_INFER_RESPONSES)
    return router


def _bad(reason: str) -> HTTPProblem:
    return HTTPProblem(400, reason)


def _infer(model, body: bytes, json_length: int | None) -> Response:
    """A request's body (and ``Inference-Header-Content-Length``) -> the response."""
    request, binary = _parse(body, json_length)
    if len(request.inputs) != 1:
        raise _bad(f"expected one input tensor of images, got {len(request.inputs)}")
    wanted = _requested_outputs(request)
    tensor = request.inputs[0]
    probs = model.predict_proba(_images(tensor, _binary_input(tensor, binary)))
    values = {"probabilities": probs.astype("<f4"), "digit": probs.argmax(axis=1).astype("<i8")}
    answer = {"model_name": model.name, "model_version": VERSION}
    if request.id is not None:
        answer["id"] = request.id
    return _response(answer, [(name, values[name], as_binary) for name, as_binary in wanted])


def _response(answer: dict, outputs: list[tuple[str, np.ndarray, bool]]) -> Response:
    """``answer`` with its ``outputs`` (name, values, as binary?): JSON, or, when any output is
    binary, the JSON followed by those outputs' bytes in order."""
    answer["outputs"], chunks = [], []
    for name, array, as_binary in outputs:
        output: dict[str, Any] = {"name": name, "datatype": OUTPUTS[name][0], "shape": list(array.shape)}
        if as_binary:
            chunks.append(array.tobytes())
            output["parameters"] = {"binary_data_size": len(chunks[-1])}
        else:
            output["data"] = array.ravel().tolist()
        answer["outputs"].append(output)
    header = json.dumps(answer, separators=(",", ":")).encode()
    if not chunks:
        return Response(header, media_type="application/json")
    return Response(header + b"".join(chunks), media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(header))})


def _parse(body: bytes, json_length: int | None) -> tuple[InferRequest, bytes | None]:
    """The JSON request and the binary data after it (None without ``Inference-Header-Content-Length``)."""
    if json_length is not None and json_length > len(body):
        raise _bad(f"Inference-Header-Content-Length is {json_length} but the body has {len(body)} bytes")
    end = len(body) if json_length is None else json_length
    try:
        obj = json.loads(body[:end])
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise _bad(f"malformed JSON: {e}") from None
    try:
        request = InferRequest.model_validate(obj)
    except ValidationError as e:
        raise _bad(validation_reason(e.errors())) from None
    return request, None if json_length is None else body[end:]


def _binary_input(tensor: InferInput, binary: bytes | None) -> bytes | None:
    """The input's bytes from the binary part of the body, or None when its values are in ``data``."""
    parameters = tensor.parameters or {}
    if "shared_memory_region" in parameters:
        raise _bad(f"input {tensor.name!r}: shared memory is not supported; send data or binary data")
    size = parameters.get("binary_data_size")
    if size is None:
        if binary:
            raise _bad(f"{len(binary)} bytes of binary data follow the JSON, but input {tensor.name!r} "
                       "has no parameters.binary_data_size")
        if tensor.data is None:
            raise _bad(f"input {tensor.name!r} has no data: send 'data', or binary data with "
                       "parameters.binary_data_size")
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _bad(f"input {tensor.name!r}: binary_data_size must be a whole number of bytes, got {size!r}")
    if tensor.data is not None:
        raise _bad(f"input {tensor.name!r} has both data and binary_data_size; send one")
    if binary is None:
        raise _bad(f"input {tensor.name!r} has binary_data_size but the request has no "
                   "Inference-Header-Content-Length header saying where its JSON ends")
    if size != len(binary):
        raise _bad(f"input {tensor.name!r}: binary_data_size is {size} but {len(binary)} bytes follow the JSON")
    return binary


def _requested_outputs(request: InferRequest) -> list[tuple[str, bool]]:
    """The outputs to answer, each with whether it goes as binary data."""
    default = _flag(request.parameters, "binary_data_output", "parameters", False)
    if not request.outputs:
        return [(name, default) for name in OUTPUTS]
    wanted = []
    for i, output in enumerate(request.outputs):
        if output.name not in OUTPUTS:
            raise _bad(f"unknown output {output.name!r}; this model has: {', '.join(OUTPUTS)}")
        parameters = output.parameters or {}
        for unsupported in ("classification", "shared_memory_region"):
            if unsupported in parameters:
                raise _bad(f"output {output.name!r}: {unsupported} is not supported")
        wanted.append((output.name, _flag(parameters, "binary_data", f"outputs[{i}].parameters", default)))
    return wanted


def _flag(parameters: dict | None, key: str, where: str, default: bool) -> bool:
    value = (parameters or {}).get(key, default)
    if not isinstance(value, bool):
        raise _bad(f"{where}.{key} must be true or false, got {value!r}")
    return value


def _images(tensor: InferInput, binary: bytes | None) -> np.ndarray:
    """The input tensor as uint8 N x 28 x 28, or a 400 saying what is wrong with it."""
    datatype, shape = tensor.datatype.upper(), tensor.shape
    if any(s < 0 for s in shape):
        raise _bad(f"input {tensor.name!r}: shape {shape} has a negative dimension")
    if datatype == "BYTES":
        return _encoded_images(tensor, binary)
    if datatype not in DTYPES:
        raise _bad(f"input {tensor.name!r}: datatype {tensor.datatype!r} is not supported; "
                   "send UINT8 (0..255), FP32 (0..1) or BYTES (image files)")
    n = _batch_size(tensor.name, shape)
    if binary is not None:
        dtype = np.dtype(DTYPES[datatype])
        if len(binary) != n * 784 * dtype.itemsize:
            raise _bad(f"input {tensor.name!r}: shape {shape} of {datatype} needs {n * 784 * dtype.itemsize} "
                       f"bytes, binary_data_size is {len(binary)}")
        values = np.frombuffer(binary, dtype).astype(np.float64)
    else:
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


def _encoded_images(tensor: InferInput, binary: bytes | None) -> np.ndarray:
    """BYTES: image files, base64 strings in ``data`` or raw in the binary data."""
    items = tensor.data if binary is None else _byte_elements(tensor.name, binary)
    if len(tensor.shape) != 1 or tensor.shape[0] != len(items):
        raise _bad(f"input {tensor.name!r}: BYTES takes shape [N] with N image files; "
                   f"got shape {tensor.shape} and {len(items)} items")
    if not 1 <= len(items) <= MAX_BATCH:
        raise _bad(f"input {tensor.name!r}: {len(items)} images; send 1 to {MAX_BATCH} per request")
    digits = []
    for i, item in enumerate(items):
        if binary is None and not isinstance(item, str):
            raise _bad(f"input {tensor.name!r}: item {i} is not a base64 string")
        try:
            data = inputs.decode_base64(item) if binary is None else item
            digits.append(inputs.digit_from_image(data))
        except HTTPProblem as e:
            status = 413 if e.status == 413 else 400
            raise HTTPProblem(status, f"input {tensor.name!r}, item {i}: {e.reason}") from None
        except DigitlabError as e:
            raise _bad(f"input {tensor.name!r}, item {i}: {e}") from None
    return np.stack(digits)


def _byte_elements(name: str, binary: bytes) -> list[bytes]:
    """BYTES as binary data: each element a 4-byte little-endian length, then that many bytes."""
    items, at = [], 0
    while at < len(binary):
        if len(items) == MAX_BATCH:
            raise _bad(f"input {name!r}: over {MAX_BATCH} images; send 1 to {MAX_BATCH} per request")
        if at + 4 > len(binary):
            raise _bad(f"input {name!r}: BYTES binary data cut short in the length of item {len(items)}")
        (size,) = struct.unpack_from("<I", binary, at)
        if at + 4 + size > len(binary):
            raise _bad(f"input {name!r}: BYTES item {len(items)} says {size} bytes, "
                       f"{len(binary) - at - 4} remain")
        items.append(binary[at + 4 : at + 4 + size])
        at += 4 + size
    return items
