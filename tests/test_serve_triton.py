"""The Open Inference Protocol routes through Triton's own Python client (``tritonclient.http``)
against a real uvicorn server: health, metadata, and inference with JSON and binary inputs and
outputs, whose answers must be the model's own. Then the binary tensor data extension's refusals,
and ``digitlab serve --workers 2`` answering the same client."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web server needs the 'web' extra")
httpclient = pytest.importorskip("tritonclient.http", reason="needs Triton's client: pip install 'tritonclient[http]'")
from fastapi.testclient import TestClient  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from conftest import MNIST_DIR, MNIST_MISSING, pattern_digits, strokes  # noqa: E402
from digitlab import load_model, save_model  # noqa: E402
from digitlab.serve import MAX_BATCH, create_app  # noqa: E402
from digitlab.vision import to_mnist  # noqa: E402
from serve_support import digitlab_serve, drawn_digit, png_bytes, serve_in_thread, tiny_model  # noqa: E402

N = 64


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A small dense network trained a little, and an untrained `cnn-fast` (its answers are noise,
    but they are the model's answers, which is what these tests compare)."""
    from digitlab.recipes import get_recipe

    folder = tmp_path_factory.mktemp("models")
    images, labels = pattern_digits(64, size=28)
    dense = tiny_model(0).compile("adam")
    dense.fit(images, labels, epochs=2, batch_size=32)
    save_model(dense, folder / "dense.npz")
    save_model(get_recipe("cnn-fast").build(seed=3), folder / "cnn.npz")
    return folder


@pytest.fixture(scope="module")
def server(model_files):
    """``host:port`` of a real uvicorn server on a free loopback port, in a thread."""
    with serve_in_thread(create_app(model_files)) as port:
        yield f"127.0.0.1:{port}"


@pytest.fixture
def triton(server):
    client = httpclient.InferenceServerClient(server)
    yield client
    client.close()


def expected(model_files: Path, model: str, images: np.ndarray) -> np.ndarray:
    """What ``digitlab predict`` answers: the model file's own ``predict_proba``."""
    return load_model(model_files / f"{model}.npz").predict_proba(images)


def tensor(images: np.ndarray, binary: bool, datatype: str = "UINT8", name: str = "image"):
    data = images if datatype == "UINT8" else (images / 255).astype({"FP16": np.float16, "FP32": np.float32,
                                                                      "FP64": np.float64}[datatype])
    return httpclient.InferInput(name, list(data.shape), datatype).set_data_from_numpy(data, binary_data=binary)


def check_answer(result, want: np.ndarray, exact: bool = True) -> None:
    """The answer is ``want``: bit for bit when the server computes in this process, within float32
    rounding when another process does (its BLAS may run on another number of threads)."""
    probs, digits = result.as_numpy("probabilities"), result.as_numpy("digit")
    assert probs.dtype == np.float32 and probs.shape == want.shape and digits.dtype == np.int64
    if exact:
        np.testing.assert_array_equal(probs, want)
        np.testing.assert_array_equal(digits, want.argmax(axis=1))
    else:
        np.testing.assert_allclose(probs, want, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(digits, probs.argmax(axis=1))


# ----------------------------------------------------------------------------- health and metadata
def test_health_and_metadata(triton):
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    assert triton.is_model_ready("cnn") and triton.is_model_ready("dense", "1")
    assert not triton.is_model_ready("gamma") and not triton.is_model_ready("cnn", "2")
    meta = triton.get_model_metadata("cnn")
    assert meta["name"] == "cnn" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, 28, 28]}]
    assert {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]} == {
        "probabilities": ("FP32", [-1, 10]), "digit": ("INT64", [-1])}
    with pytest.raises(InferenceServerException, match="no model named 'gamma'"):
        triton.get_model_metadata("gamma")


# ----------------------------------------------------------------------------- inference
@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
@pytest.mark.parametrize("binary_out", [False, True], ids=["json-out", "binary-out"])
def test_infer_json_and_binary(triton, model_files, binary_in, binary_out):
    images = strokes(N, seed=1)
    outputs = [httpclient.InferRequestedOutput(k, binary_data=binary_out) for k in ("probabilities", "digit")]
    for model in ("dense", "cnn"):
        result = triton.infer(model, [tensor(images, binary_in)], outputs=outputs, request_id="r7")
        check_answer(result, expected(model_files, model, images))
        response = result.get_response()
        assert response["model_name"] == model and response["model_version"] == "1" and response["id"] == "r7"
        probs = result.get_output("probabilities")
        assert probs["shape"] == [N, 10] and probs["datatype"] == "FP32"
        assert (probs.get("parameters") == {"binary_data_size": N * 10 * 4}) is binary_out
        assert ("data" in probs) is not binary_out


def test_infer_by_default_answers_every_output_in_binary(triton, model_files):
    """With no outputs named, tritonclient asks for all of them as binary (binary_data_output)."""
    images = strokes(N, seed=2)
    result = triton.infer("cnn", [tensor(images, binary=True)], model_version="1")
    check_answer(result, expected(model_files, "cnn", images))
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities", "digit"]
    assert result.get_output("digit")["parameters"] == {"binary_data_size": N * 8}


def test_one_output_and_mixed_json_and_binary(triton, model_files):
    images = strokes(N, seed=3)
    want = expected(model_files, "dense", images)
    only = triton.infer("dense", [tensor(images, True)], outputs=[httpclient.InferRequestedOutput("digit")])
    assert [o["name"] for o in only.get_response()["outputs"]] == ["digit"]
    np.testing.assert_array_equal(only.as_numpy("digit"), want.argmax(axis=1))
    mixed = triton.infer("dense", [tensor(images, False)], outputs=[
        httpclient.InferRequestedOutput("digit", binary_data=False), httpclient.InferRequestedOutput("probabilities")])
    check_answer(mixed, want)
    assert "data" in mixed.get_output("digit") and "parameters" in mixed.get_output("probabilities")


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_float_pixels(triton, model_files, datatype, binary):
    images = strokes(8, seed=4)
    result = triton.infer("dense", [tensor(images, binary, datatype)])
    check_answer(result, expected(model_files, "dense", images))


@pytest.mark.parametrize("binary", [False, True], ids=["base64-json", "raw-binary"])
def test_image_files_as_bytes(triton, model_files, binary):
    """BYTES: PNG files, raw as binary data (each a 4-byte length, then the bytes) or base64 in
    JSON, read as `digitlab.vision` reads an upload."""
    files = [png_bytes(drawn_digit(d)) for d in (1, 7, 2)]
    items = files if binary else [base64.b64encode(f) for f in files]
    data = np.array(items, dtype=np.object_)
    image_input = httpclient.InferInput("png", [3], "BYTES").set_data_from_numpy(data, binary_data=binary)
    result = triton.infer("cnn", [image_input])
    check_answer(result, expected(model_files, "cnn", np.stack([to_mnist(f) for f in files])))


@pytest.mark.mnist
def test_mnist_test_images(triton, model_files):
    if MNIST_DIR is None:
        pytest.skip(MNIST_MISSING)
    from digitlab.data import load_mnist

    images = load_mnist("test", MNIST_DIR).images[:N]
    for binary in (False, True):
        outputs = [httpclient.InferRequestedOutput(k, binary_data=binary) for k in ("probabilities", "digit")]
        result = triton.infer("cnn", [tensor(images, binary)], outputs=outputs)
        check_answer(result, expected(model_files, "cnn", images))


def test_client_refusals_are_400s_with_a_reason(triton):
    too_many = np.zeros((MAX_BATCH + 1, 28, 28), np.uint8)
    flags = httpclient.InferInput("image", [1, 784], "BOOL").set_data_from_numpy(np.zeros((1, 784), bool))
    for inputs, reason in (([tensor(too_many, True)], f"1 to {MAX_BATCH}"), ([flags], "'BOOL' is not supported")):
        with pytest.raises(InferenceServerException, match=reason) as refused:
            triton.infer("cnn", inputs)
        assert refused.value.status() == "400"
    ranked = httpclient.InferRequestedOutput("probabilities", class_count=3)
    with pytest.raises(InferenceServerException, match="classification is not supported"):
        triton.infer("cnn", [tensor(strokes(1), True)], outputs=[ranked])
    assert triton.is_server_ready()


# ----------------------------------------------------------------------------- the extension's refusals
@pytest.fixture(scope="module")
def client(model_files):
    with TestClient(create_app(model_files)) as c:
        yield c


def binary_request(request: dict, binary: bytes, json_length: int | None = None, **headers) -> dict:
    head = json.dumps(request).encode()
    length = len(head) if json_length is None else json_length
    return dict(content=head + binary, headers={"Inference-Header-Content-Length": str(length), **headers})


def image_input(shape=(1, 784), datatype="UINT8", **parameters) -> dict:
    return {"name": "image", "shape": list(shape), "datatype": datatype, "parameters": parameters}


PIXELS = bytes(784)
BAD_BINARY = [
    # (what, request arguments, words of the reason)
    ("size over the bytes sent", binary_request({"inputs": [image_input(binary_data_size=785)]}, PIXELS),
     "binary_data_size is 785 but 784 bytes follow"),
    ("size under the bytes sent", binary_request({"inputs": [image_input(binary_data_size=700)]}, PIXELS),
     "binary_data_size is 700 but 784 bytes follow"),
    ("bytes nobody claims", binary_request({"inputs": [{**image_input(), "data": [0] * 784}]}, PIXELS),
     "784 bytes of binary data follow the JSON"),
    ("header past the body", binary_request({"inputs": [image_input(binary_data_size=784)]}, PIXELS, 10**6),
     "Inference-Header-Content-Length is 1000000"),
    ("header cuts the JSON", binary_request({"inputs": [image_input(binary_data_size=784)]}, PIXELS, 20),
     "malformed JSON"),
    ("header not a number", dict(content=b"{}", headers={"Inference-Header-Content-Length": "many"}),
     "inference-header-content-length"),
    ("negative header", dict(content=b"{}", headers={"Inference-Header-Content-Length": "-1"}),
     "inference-header-content-length"),
    ("size without the header", dict(json={"inputs": [image_input(binary_data_size=784)]}),
     "no Inference-Header-Content-Length"),
    ("data and size", binary_request({"inputs": [{**image_input(binary_data_size=784), "data": [0] * 784}]}, PIXELS),
     "both data and binary_data_size"),
    ("size not a number", binary_request({"inputs": [image_input(binary_data_size="784")]}, PIXELS),
     "binary_data_size must be a whole number"),
    ("neither data nor size", dict(json={"inputs": [image_input()]}), "has no data"),
    ("bytes do not fit the datatype", binary_request({"inputs": [image_input(datatype="FP32", binary_data_size=784)]},
                                                     PIXELS), "needs 3136 bytes"),
    ("unknown datatype", binary_request({"inputs": [image_input(datatype="BF16", binary_data_size=1568)]},
                                        bytes(1568)), "'BF16' is not supported"),
    ("too many images", binary_request({"inputs": [image_input((MAX_BATCH + 1, 784), binary_data_size=784)]},
                                       PIXELS), f"1 to {MAX_BATCH}"),
    ("pixel out of range", binary_request({"inputs": [image_input(datatype="INT16", binary_data_size=1568)]},
                                          struct.pack("<784h", -1, *[0] * 783)), "integers 0..255"),
    ("NaN pixel", binary_request({"inputs": [image_input(datatype="FP32", binary_data_size=3136)]},
                                 struct.pack("<784f", float("nan"), *[0] * 783)), "NaN"),
    ("BYTES cut short", binary_request({"inputs": [image_input((1,), "BYTES", binary_data_size=6)]},
                                       struct.pack("<I", 10) + b"ab"), "says 10 bytes, 2 remain"),
    ("BYTES length cut short", binary_request({"inputs": [image_input((1,), "BYTES", binary_data_size=2)]}, b"ab"),
     "cut short in the length"),
    ("BYTES count off the shape", binary_request({"inputs": [image_input((2,), "BYTES", binary_data_size=7)]},
                                                 struct.pack("<I", 3) + b"png"), "shape [N]"),
    ("BYTES too many items", binary_request({"inputs": [image_input((1,), "BYTES", binary_data_size=4 * 300)]},
                                            bytes(4 * 300)), f"over {MAX_BATCH} images"),
    ("BYTES not an image", binary_request({"inputs": [image_input((1,), "BYTES", binary_data_size=7)]},
                                          struct.pack("<I", 3) + b"png"), "not an image"),
    ("binary_data not a flag", dict(json={"inputs": [{**image_input(), "data": [0] * 784}],
                                          "outputs": [{"name": "digit", "parameters": {"binary_data": "yes"}}]}),
     "binary_data must be true or false"),
    ("binary_data_output not a flag", dict(json={"inputs": [{**image_input(), "data": [0] * 784}],
                                                 "parameters": {"binary_data_output": 1}}), "must be true or false"),
    ("shared memory", dict(json={"inputs": [image_input(shared_memory_region="r", shared_memory_byte_size=784)]}),
     "shared memory is not supported"),
    ("compressed body", dict(content=b"\x1f\x8b", headers={"Content-Encoding": "gzip"}), "'gzip' is not supported"),
    ("JSON not an object", dict(content=b"[1, 2]"), "valid dictionary"),
    ("not JSON", dict(content=b"\x89PNG\r\n"), "malformed JSON"),
]


@pytest.mark.parametrize("what, kwargs, reason", BAD_BINARY, ids=[r[0] for r in BAD_BINARY])
def test_binary_refusals(client, what, kwargs, reason):
    response = client.post("/v2/models/dense/infer", **kwargs)
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]


def test_json_without_a_content_type_and_binary_over_plain_http(client, model_files):
    images = strokes(2, seed=5)
    want = expected(model_files, "dense", images)
    body = {"inputs": [{"name": "x", "shape": [2, 784], "datatype": "UINT8", "data": images.ravel().tolist()}]}
    for headers in ({}, {"content-type": "application/json"}, {"content-type": "text/plain"}):
        response = client.post("/v2/models/dense/infer", content=json.dumps(body), headers=headers)
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        assert response.json()["outputs"][0]["data"] == want.ravel().tolist()
    request = {"inputs": [image_input((2, 28, 28), binary_data_size=2 * 784)],
               "outputs": [{"name": "digit"}, {"name": "probabilities", "parameters": {"binary_data": True}}]}
    response = client.post("/v2/models/dense/infer", **binary_request(request, images.tobytes()))
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    head, tail = json.loads(response.content[:length]), response.content[length:]
    assert [o.get("data") for o in head["outputs"]] == [want.argmax(axis=1).tolist(), None]
    assert head["outputs"][1]["parameters"] == {"binary_data_size": len(tail)} and "id" not in head
    np.testing.assert_array_equal(np.frombuffer(tail, "<f4").reshape(2, 10), want)


def test_the_schema_describes_the_json_request_and_the_binary_forms(client):
    infer = client.get("/openapi.json").json()["paths"]["/v2/models/{name}/infer"]["post"]
    request = infer["requestBody"]["content"]
    assert request["application/json"]["schema"]["required"] == ["inputs"]
    assert "$ref" not in json.dumps(request)  # written in place: openapi_extra is copied as it is
    assert set(request) == {"application/json", "application/octet-stream"}
    assert set(infer["responses"]["200"]["content"]) == {"application/json", "application/octet-stream"}
    header = {p["name"]: p for p in infer["parameters"]}["inference-header-content-length"]
    assert header["in"] == "header" and not header.get("required")


# ----------------------------------------------------------------------------- digitlab serve --workers
@pytest.mark.slow
def test_serve_with_workers_answers_tritonclient(model_files):
    with digitlab_serve("--models-dir", str(model_files), "--workers", "2") as (port, _):
        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        images = strokes(N, seed=6)
        for _ in range(4):  # a few requests, so that both worker processes are likely to answer
            check_answer(client.infer("cnn", [tensor(images, True)]), expected(model_files, "cnn", images), exact=False)
        client.close()
