"""The web server's routes through a test client: every route, every refusal, and that a refused
request leaves the server serving."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web server needs the 'web' extra")
from fastapi.testclient import TestClient  # noqa: E402

from conftest import pattern_digits  # noqa: E402
from digitlab.cli import main  # noqa: E402
from digitlab import save_model  # noqa: E402
from digitlab.serve import MAX_BATCH, MAX_UPLOAD_BYTES, ModelStore, create_app  # noqa: E402
from digitlab.serve.limits import UVICORN_SETTINGS  # noqa: E402
from serve_support import drawn_digit, mnist_photo, png_bytes, png_header_only, tiny_model  # noqa: E402

SEVEN = png_bytes(drawn_digit(7))
BLANK = png_bytes(Image.new("L", (120, 90), 255))


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    images, labels = pattern_digits(64, size=28)
    for name, seed in (("alpha", 0), ("beta", 1)):
        model = tiny_model(seed).compile("adam")
        model.fit(images, labels, epochs=2, batch_size=32, validation_split=0.25)
        save_model(model, folder / f"{name}.npz", recipe="tiny", metrics={"test_accuracy": 0.5})
    return folder


@pytest.fixture(scope="module")
def client(model_files, tmp_path_factory):
    empty = tmp_path_factory.mktemp("no-mnist")
    with TestClient(create_app(model_files, data_dir=empty)) as c:
        yield c


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def check_prediction(body: dict) -> None:
    assert 0 <= body["digit"] <= 9
    assert len(body["probabilities"]) == 10 and abs(sum(body["probabilities"]) - 1) < 1e-4
    assert body["confidence"] == max(body["probabilities"])
    assert body["latency_ms"] >= body["inference_ms"] >= 0
    seen = Image.open(io.BytesIO(base64.b64decode(body["image"].split(",", 1)[1])))
    assert seen.size == (28, 28) and seen.mode == "L"


# ----------------------------------------------------------------------------- page, health, models
def test_page_and_its_assets_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="canvas"' in page.text and "/static/app.js" in page.text
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text  # no CDN
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    assert "https://" not in docs.text and "http://" not in docs.text  # Swagger UI from local files
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/predict/batch", "/v2/models/{name}/infer"} <= set(schema["paths"])


def test_head_of_the_page_answers_like_get(client):
    head, get = client.head("/"), client.get("/")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]


def test_every_response_says_what_a_browser_may_do_with_it(client):
    """No type sniffing, no framing, and for the page a Content-Security-Policy allowing only this
    server's scripts, styles and API, and data: images (the 28x28 PNGs the API returns)."""
    import hashlib

    responses = {"page": client.get("/"), "script": client.get("/static/app.js"), "api": client.get("/api/models"),
                 "refusal": client.post("/api/predict", content=b"x", headers={"content-type": "text/plain"}),
                 "body over the limit": client.post("/api/predict", content=BIG, headers=PNG),
                 "docs": client.get("/docs")}
    for what, response in responses.items():
        assert response.headers["x-content-type-options"] == "nosniff", what
        assert response.headers["x-frame-options"] == "DENY", what
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], what
    policy = dict(part.strip().split(" ", 1) for part in responses["page"].headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["img-src"] == "'self' data:"
    assert "script-src" not in policy and "style-src" not in policy  # no inline script or style: 'self' only
    page = responses["page"].text
    assert "<script>" not in page and "<style" not in page and " style=" not in page and "onload=" not in page
    # /docs runs one inline script (Swagger UI's start), allowed by its hash and nothing wider.
    docs = responses["docs"]
    script = re.search(r"<script>(.*?)</script>", docs.text, re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    docs_policy = docs.headers["content-security-policy"]
    assert f"script-src 'self' 'sha256-{digest}';" in docs_policy and "unsafe-eval" not in docs_policy


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "models": ["alpha", "beta"]}


def test_models_list_and_details(client):
    listing = client.get("/api/models").json()
    assert listing["default"] == "alpha"
    assert [m["name"] for m in listing["models"]] == ["alpha", "beta"]
    assert listing["models"][0] | {"params": 0} == {"name": "alpha", "file": "alpha.npz", "recipe": "tiny",
                                                    "test_accuracy": 0.5, "params": 0, "epochs": 2, "default": True}
    details = client.get("/api/models/beta").json()
    assert [row["layer"].split("(")[0] for row in details["architecture"]] == [
        "Rescaling", "Flatten", "Dense", "ReLU", "Dense", "Softmax"]
    assert details["architecture"][2] == {"layer": details["architecture"][2]["layer"], "output_shape": [16], "params": 784 * 16 + 16}
    assert len(details["history"]) == 2 and "val_accuracy" in details["history"][0]
    assert details["input_shape"] == [28, 28] and details["default"] is False


def test_confusion_says_when_mnist_is_missing(client, model_files, tmp_path, monkeypatch, caplog):
    """It says which files are missing, not where the server keeps its files (that is in its log)."""
    body = client.get("/api/models/alpha/confusion").json()
    assert body["available"] is False and "missing MNIST files" in body["reason"]
    assert "t10k-images-idx3-ubyte.gz" in body["reason"] and "--data-dir" in body["reason"]
    monkeypatch.setenv("DIGITLAB_DATA_DIR", str(tmp_path / "elsewhere"))
    for data_dir in (None, tmp_path / "mnist"):
        reason = TestClient(create_app(model_files, data_dir=data_dir)).get("/api/models/beta/confusion").json()["reason"]
        assert "missing MNIST files" in reason and "/" not in reason  # no path of the server's
    assert str(tmp_path / "mnist") in caplog.text  # the server's log says where it looked


@pytest.mark.mnist
def test_confusion_on_the_mnist_test_set(model_files, mnist_dir):
    client = TestClient(create_app(model_files, data_dir=mnist_dir))
    body = client.get("/api/models/beta/confusion").json()
    assert body["available"] and body["images"] == 10_000
    matrix = np.array(body["matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 10_000
    assert body["accuracy"] == pytest.approx(np.trace(matrix) / 10_000)
    mistakes = body["misclassified"]
    assert 0 < len(mistakes) <= 36 and all(m["label"] != m["predicted"] for m in mistakes)
    assert [m["confidence"] for m in mistakes] == sorted((m["confidence"] for m in mistakes), reverse=True)
    assert mistakes[0]["image"].startswith("data:image/png;base64,")
    assert client.get("/api/models/beta/confusion").json() == body  # cached


# ----------------------------------------------------------------------------- predicting
def test_predict_from_every_kind_of_input(client):
    raw = client.post("/api/predict", content=SEVEN, headers={"content-type": "image/png"})
    upload = client.post("/api/predict", files={"file": ("seven.png", SEVEN, "image/png")})
    as_json = client.post("/api/predict", json={"image": b64(SEVEN)})
    as_data_url = client.post("/api/predict", json={"image": "data:image/png;base64," + b64(SEVEN)})
    for response in (raw, upload, as_json, as_data_url):
        assert response.status_code == 200, response.text
        check_prediction(response.json())
    assert raw.json()["probabilities"] == upload.json()["probabilities"] == as_json.json()["probabilities"]
    assert raw.json()["model"] == "alpha"

    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(raw.json()["image"].split(",")[1]))))
    pixels = client.post("/api/predict?model=alpha", json={"pixels": seen.ravel().tolist()})
    assert pixels.status_code == 200
    assert pixels.json()["probabilities"] == pytest.approx(raw.json()["probabilities"], abs=1e-6)
    jpeg = io.BytesIO()
    drawn_digit(7).save(jpeg, format="JPEG")
    response = client.post("/api/predict?model=beta", content=jpeg.getvalue(), headers={"content-type": "image/jpeg"})
    assert response.status_code == 200 and response.json()["model"] == "beta"


def test_predict_a_number(client):
    photo = Image.new("L", (600, 280), 255)
    photo.paste(drawn_digit(1), (0, 0))
    photo.paste(drawn_digit(7), (300, 0))
    body = client.post("/api/predict?number=true", content=png_bytes(photo), headers={"content-type": "image/png"}).json()
    assert len(body["number"]) == 2 and len(body["digits"]) == 2 and body["digit"] is None
    assert body["number"] == "".join(str(d["digit"]) for d in body["digits"])


def test_the_answer_on_the_web_is_the_answer_of_digitlab_predict(client, model_files, tmp_path, monkeypatch, capsys):
    """One path from an upload to an answer: /api/predict reads a file as `digitlab predict` does,
    at every threshold, with the boxes `segment` finds."""
    from digitlab.vision import segment

    photo = Image.new("L", (900, 280), 255)
    for i, digit in enumerate((1, 7, 2)):
        photo.paste(drawn_digit(digit), (300 * i, 0))
    monkeypatch.chdir(tmp_path)  # short paths, so the CLI's table keeps each on one line
    for name, data, number in (("seven.png", SEVEN, False), ("number.png", png_bytes(photo), True)):
        Path(name).write_bytes(data)

        def web(threshold):
            params = {"model": "beta", "number": number, "threshold": threshold}
            response = client.post("/api/predict", files={"file": (name, data, "image/png")}, params=params)
            assert response.status_code == 200, response.text
            return response.json()

        first = web(0.0)
        confidences = sorted({d["confidence"] for d in first["digits"]} if number else {first["confidence"]})
        thresholds = [0.0, *((a + b) / 2 for a, b in zip(confidences, confidences[1:])), 1.0]
        for threshold in thresholds:
            options = ["--number"] if number else []
            assert main(["predict", str(model_files / "beta.npz"), name, *options, "--threshold", repr(threshold)]) == 0
            printed = re.search(rf"│ {re.escape(name)}\s*│ (\S+)", capsys.readouterr().out).group(1)
            assert web(threshold)["answer"] == printed, (name, threshold)
        if number:
            assert len(first["answer"]) == 3 and first["answer"] == first["number"]
            assert [d["box"] for d in first["digits"]] == segment(data, return_boxes=True)[1].tolist()


def test_threshold_answers_question_marks(client):
    for params in ({}, {"number": "true"}):
        sure = client.post("/api/predict", content=SEVEN, headers=PNG, params={**params, "threshold": 0}).json()
        unsure = client.post("/api/predict", content=SEVEN, headers=PNG, params={**params, "threshold": 1}).json()
        digits = sure["number"] if params else str(sure["digit"])
        assert sure["answer"] == digits and unsure["answer"] == "?" * len(digits)
        assert {k: v for k, v in unsure.items() if not k.endswith("ms") and k != "answer"} == \
               {k: v for k, v in sure.items() if not k.endswith("ms") and k != "answer"}  # only the answer abstains
    pixels = client.post("/api/predict", json={"pixels": [0] * 784}, params={"threshold": 1}).json()
    assert pixels["answer"] == "?"


def test_batch(client):
    items = [{"image": b64(SEVEN)}, {"pixels": [0] * 784}, {"image": b64(BLANK)}, {"image": b64(b"not an image")},
             {"image": "@@@"}]
    body = client.post("/api/predict/batch?model=beta", json={"items": items}).json()
    results = body["results"]
    assert body["model"] == "beta" and len(results) == 5
    assert results[0]["digit"] is not None and results[1]["digit"] is not None
    assert "no digit found" in results[2]["error"]
    assert "not an image" in results[3]["error"]
    assert "base64" in results[4]["error"]
    single = client.post("/api/predict?model=beta", json={"image": b64(SEVEN)}).json()
    assert results[0]["probabilities"] == pytest.approx(single["probabilities"], abs=1e-6)

    files = [("files", (f"{i}.png", SEVEN, "image/png")) for i in range(3)]
    body = client.post("/api/predict/batch", files=files).json()
    assert len(body["results"]) == 3 and body["results"][0]["probabilities"] == body["results"][2]["probabilities"]


# ----------------------------------------------------------------------------- refusals
def chunks(data: bytes, size: int = 1 << 20):
    for i in range(0, len(data), size):
        yield data[i : i + size]


BIG = b"\0" * (MAX_UPLOAD_BYTES + 1)
PNG = {"content-type": "image/png"}
BAD_REQUESTS = [
    # (what, request arguments, status, words of the reason)
    ("body over the limit", dict(content=BIG, headers=PNG), 413, "over the limit"),
    ("streamed body over the limit", dict(content=chunks(BIG), headers=PNG), 413, "over the limit"),
    ("JSON body over the limit", dict(json={"image": "A" * MAX_UPLOAD_BYTES}), 413, "over the limit"),
    ("image over the pixel limit", dict(content=png_header_only(8000, 6000), headers=PNG), 413, "48 megapixels"),
    ("decompression bomb", dict(content=png_header_only(50_000, 50_000), headers=PNG), 413, "too many pixels"),
    ("text body", dict(content=b"seven", headers={"content-type": "text/plain"}), 415, "text/plain"),
    ("no content type", dict(content=b"seven"), 415, "(none)"),
    ("form body", dict(data={"image": "x"}), 415, "application/x-www-form-urlencoded"),
    ("malformed JSON", dict(content=b'{"image": ', headers={"content-type": "application/json"}), 422, "malformed JSON"),
    ("JSON not an object", dict(json=[1, 2]), 422, "valid dictionary"),
    ("deeply nested JSON", dict(content=b"[" * 100_000, headers={"content-type": "application/json"}), 422, "malformed JSON"),
    ("bad base64", dict(json={"image": "not base64!"}), 422, "base64"),
    ("empty base64", dict(json={"image": ""}), 422, "at least 1 character"),
    ("blank base64", dict(json={"image": " \n"}), 422, "empty"),
    ("783 pixels", dict(json={"pixels": [0] * 783}), 422, "at least 784"),
    ("785 pixels", dict(json={"pixels": [0] * 785}), 422, "at most 784"),
    ("pixel over 255", dict(json={"pixels": [300] + [0] * 783}), 422, "less than or equal to 255"),
    ("pixels not numbers", dict(json={"pixels": ["a"] * 784}), 422, "number"),
    ("image and pixels", dict(json={"image": "AAAA", "pixels": [0] * 784}), 422, "exactly one"),
    ("neither", dict(json={}), 422, "exactly one"),
    ("null image", dict(json={"image": None}), 422, "must not be null"),
    ("unknown field", dict(json={"picture": "AAAA"}), 422, "picture"),
    ("not an image", dict(content=b"hello, world", headers=PNG), 422, "not an image"),
    ("truncated PNG", dict(content=SEVEN[: len(SEVEN) // 2], headers=PNG), 422, "truncated"),
    ("empty body", dict(content=b"", headers=PNG), 422, "empty"),
    ("zero-size image", dict(content=png_header_only(0, 10), headers=PNG), 422, "not an image"),
    ("blank image", dict(content=BLANK, headers=PNG), 422, "no digit found"),
    ("multipart without the file", dict(files={"other": ("a.png", SEVEN, "image/png")}), 422, "'file'"),
    ("multipart with text", dict(data={"file": "x"}, files={"z": ("z", b"", "text/plain")}), 422, "'file'"),
    ("multipart without boundary", dict(content=b"--x\r\n", headers={"content-type": "multipart/form-data"}), 422, "multipart"),
    ("unknown model", dict(json={"pixels": [0] * 784}, params={"model": "gamma"}), 404, "no model named 'gamma'"),
    ("threshold over 1", dict(content=SEVEN, headers=PNG, params={"threshold": 1.5}), 422, "threshold"),
    ("threshold not a number", dict(content=SEVEN, headers=PNG, params={"threshold": "high"}), 422, "threshold"),
]


@pytest.mark.parametrize("what, kwargs, status, reason", BAD_REQUESTS, ids=[r[0] for r in BAD_REQUESTS])
def test_bad_input_is_refused_with_a_reason_and_the_server_keeps_serving(client, what, kwargs, status, reason):
    response = client.post("/api/predict", **kwargs)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and reason in detail
    good = client.post("/api/predict", json={"image": b64(SEVEN)})
    assert good.status_code == 200


def test_only_the_image_formats_digitlab_reads_are_opened(client, monkeypatch):
    """An EPS upload is refused from its header without Pillow handing it to its EPS plugin (which
    runs Ghostscript to decode): the header check opens only `digitlab.data.IMAGE_FORMATS`."""
    from PIL import EpsImagePlugin

    opened = []
    real_open = EpsImagePlugin.EpsImageFile._open
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: (opened.append(1), real_open(self))[1])
    eps = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n%%EndComments\n"
           b"newpath 14 4 moveto 14 24 lineto stroke\nshowpage\n%%EOF\n")
    for response in (client.post("/api/predict", content=eps, headers={"content-type": "image/x-eps"}),
                     client.post("/api/predict", json={"image": b64(eps)})):
        assert response.status_code == 422
        assert response.json()["detail"].startswith("not an image in a format digitlab reads (PNG, JPEG,")
    assert opened == []


def test_a_bug_in_preprocessing_is_logged_and_refused_not_a_500(client, monkeypatch, caplog):
    from digitlab.vision import reading

    def broken(image):
        raise IndexError("index 28 is out of bounds")

    monkeypatch.setattr(reading, "find_digit", broken)  # where `read`, and so /api/predict, finds it
    response = client.post("/api/predict", content=SEVEN, headers=PNG)
    assert response.status_code == 422
    assert response.json()["detail"] == "could not read this image (IndexError: index 28 is out of bounds)"
    assert "preprocessing failed" in caplog.text and "Traceback" in caplog.text
    monkeypatch.undo()
    assert client.post("/api/predict", content=SEVEN, headers=PNG).status_code == 200


def test_refusals_of_the_other_routes(client):
    for path in ("/api/models/gamma", "/api/models/gamma/confusion"):
        response = client.get(path)
        assert response.status_code == 404 and "no model named 'gamma'" in response.json()["detail"]
    assert client.get("/api/nothing-here").status_code == 404
    assert client.get("/api/predict").status_code == 405

    batch = "/api/predict/batch"
    response = client.post(batch, json={"items": [{"pixels": [0] * 784}] * (MAX_BATCH + 1)})
    assert response.status_code == 422 and f"at most {MAX_BATCH}" in response.json()["detail"]
    assert client.post(batch, json={"items": []}).status_code == 422
    assert client.post(batch, json={"items": [{"pixels": [0] * 10}]}).status_code == 422
    assert client.post(batch, content=SEVEN, headers=PNG).status_code == 415
    assert client.post(batch, files={"file": ("a.png", SEVEN, "image/png")}).status_code == 422
    assert client.post(batch, params={"model": "gamma"}, json={"items": [{"pixels": [0] * 784}]}).status_code == 404
    assert client.post(batch, content=BIG, headers={"content-type": "application/json"}).status_code == 413


# ----------------------------------------------------------------------------- Open Inference Protocol
def infer(client, inputs, model="alpha", **extra):
    return client.post(f"/v2/models/{model}/infer", json={"inputs": inputs, **extra})


def test_open_inference_protocol(client):
    assert client.get("/v2").json() == {"name": "digitlab", "version": client.get("/v2").json()["version"], "extensions": ["binary_tensor_data"]}
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2/models/alpha").json()
    assert meta["name"] == "alpha" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, 28, 28]}]
    assert {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]} in meta["outputs"]
    assert client.get("/v2/models/alpha/versions/1").json() == meta
    assert client.get("/v2/models/beta/ready").json() == {"name": "beta", "ready": True}

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 28, 28))
    nested = infer(client, [{"name": "image", "shape": [2, 28, 28], "datatype": "UINT8", "data": images.tolist()}], id="r1")
    assert nested.status_code == 200, nested.text
    body = nested.json()
    assert body["model_name"] == "alpha" and body["model_version"] == "1" and body["id"] == "r1"
    probs = {o["name"]: o for o in body["outputs"]}["probabilities"]
    assert probs["shape"] == [2, 10] and probs["datatype"] == "FP32" and len(probs["data"]) == 20
    digits = {o["name"]: o for o in body["outputs"]}["digit"]
    assert digits["data"] == np.array(probs["data"]).reshape(2, 10).argmax(axis=1).tolist()

    flat = infer(client, [{"name": "x", "shape": [2, 784], "datatype": "INT64", "data": images.ravel().tolist()}])
    floats = infer(client, [{"name": "x", "shape": [2, 1, 28, 28], "datatype": "FP32", "data": (images / 255).ravel().tolist()}],
                   outputs=[{"name": "probabilities"}])
    assert [o["data"] for o in flat.json()["outputs"]] == [o["data"] for o in body["outputs"]]
    assert [o["name"] for o in floats.json()["outputs"]] == ["probabilities"]
    assert floats.json()["outputs"][0]["data"] == pytest.approx(probs["data"], abs=1e-6)

    encoded = infer(client, [{"name": "png", "shape": [1], "datatype": "BYTES", "data": [b64(SEVEN)]}], model="beta")
    single = client.post("/api/predict?model=beta", content=SEVEN, headers=PNG).json()
    assert encoded.json()["outputs"][0]["data"] == pytest.approx(single["probabilities"], abs=1e-6)
    versioned = client.post("/v2/models/alpha/versions/1/infer", json={"inputs": [
        {"name": "image", "shape": [28, 28], "datatype": "UINT8", "data": images[0].tolist()}]})
    assert versioned.json()["outputs"][0]["data"] == pytest.approx(probs["data"][:10], abs=1e-6)


OIP_BAD = [
    ("unknown model", "/v2/models/gamma/infer", {"inputs": [{"name": "a", "shape": [784], "datatype": "UINT8", "data": [0] * 784}]}, 404, "no model named 'gamma'"),
    ("unknown version", "/v2/models/alpha/versions/2/infer", {"inputs": [{"name": "a", "shape": [784], "datatype": "UINT8", "data": [0] * 784}]}, 404, "no version '2'"),
    ("no inputs", "/v2/models/alpha/infer", {"inputs": []}, 400, "at least 1"),
    ("two inputs", "/v2/models/alpha/infer", {"inputs": [{"name": "a", "shape": [784], "datatype": "UINT8", "data": [0] * 784}] * 2}, 400, "one input"),
    ("missing fields", "/v2/models/alpha/infer", {"inputs": [{"name": "a"}]}, 400, "Field required"),
    ("unsupported datatype", "/v2/models/alpha/infer", {"inputs": [{"name": "a", "shape": [784], "datatype": "BOOL", "data": [True] * 784}]}, 400, "BOOL"),
    ("shape not images", "/v2/models/alpha/infer", {"inputs": [{"name": "a", "shape": [1, 10], "datatype": "UINT8", "data": [0] * 10}]}, 400, "not images"),
    ("data does not fill the shape", "/v2/models/alpha/infer", {"inputs": [{"name": "a", "shape": [2, 784], "datatype": "UINT8", "data": [0] * 784}]}, 400, "needs 1568 values"),
    ("ragged data", "/v2/models/alpha/infer", {"inputs": [{"name": "a", "shape": [28, 28], "datatype": "UINT8", "data": [[0] * 28] * 27 + [[0] * 27]}]}, 400, "numbers"),
    ("strings as pixels", "/v2/models/alpha/infer", {"inputs": [{"name": "a", "shape": [784], "datatype": "UINT8", "data": ["x"] * 784}]}, 400, "numbers"),
    ("UINT8 out of range", "/v2/models/alpha/infer", {"inputs": [{"name": "a", "shape": [784], "datatype": "UINT8", "data": [256] * 784}]}, 400, "0..255"),
    ("FP32 not 0..1", "/v2/models/alpha/infer", {"inputs": [{"name": "a", "shape": [784], "datatype": "FP32", "data": [255.0] * 784}]}, 400, "0..1"),
    ("too many images", "/v2/models/alpha/infer", {"inputs": [{"name": "a", "shape": [MAX_BATCH + 1, 784], "datatype": "UINT8", "data": [0] * 784}]}, 400, f"1 to {MAX_BATCH}"),
    ("negative shape", "/v2/models/alpha/infer", {"inputs": [{"name": "a", "shape": [-1, 784], "datatype": "UINT8", "data": [0] * 784}]}, 400, "negative"),
    ("BYTES not base64", "/v2/models/alpha/infer", {"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": ["%%%"]}]}, 400, "base64"),
    ("BYTES blank", "/v2/models/alpha/infer", {"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": [b64(BLANK)]}]}, 400, "no digit found"),
    ("BYTES shape", "/v2/models/alpha/infer", {"inputs": [{"name": "a", "shape": [2], "datatype": "BYTES", "data": [b64(SEVEN)]}]}, 400, "shape [N]"),
    ("unknown output", "/v2/models/alpha/infer", {"inputs": [{"name": "a", "shape": [784], "datatype": "UINT8", "data": [0] * 784}], "outputs": [{"name": "logits"}]}, 400, "unknown output 'logits'"),
]


@pytest.mark.parametrize("what, path, body, status, reason", OIP_BAD, ids=[r[0] for r in OIP_BAD])
def test_open_inference_protocol_refusals(client, what, path, body, status, reason):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert reason in response.json()["error"]


def test_open_inference_protocol_refuses_malformed_bodies_and_unknown_models(client):
    for response in (client.post("/v2/models/alpha/infer", content=b"{", headers={"content-type": "application/json"}),
                     client.post("/v2/models/alpha/infer", content=b'{"inputs": [{"name": "a", "shape": [784], '
                                 b'"datatype": "FP32", "data": [NaN]}]}', headers={"content-type": "application/json"})):
        assert response.status_code == 400 and response.json()["error"]
    for path in ("/v2/models/gamma", "/v2/models/gamma/ready", "/v2/models/alpha/versions/7"):
        response = client.get(path)
        assert response.status_code == 404 and "error" in response.json()
    response = client.post("/v2/models/alpha/infer", content=BIG, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "over the limit" in response.json()["error"]


# ----------------------------------------------------------------------------- models and threads
def test_threads_predict_at_once_with_one_model_and_no_lock():
    """The server shares one model between its worker threads without a lock: the engine keeps
    each thread's work arrays (Conv2D's im2col patches) and backward context apart. Eight threads
    start each round together and must get exactly the serial answers."""
    from threadpoolctl import threadpool_limits

    from digitlab.recipes import get_recipe

    served = ModelStore({"cnn": get_recipe("cnn-fast").build(seed=3)}).get("cnn")
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (4, 28, 28), dtype=np.uint8) for _ in range(8)]
    rounds = 5
    start = threading.Barrier(len(batches))
    results = [[] for _ in batches]

    def work(i):
        for _ in range(rounds):
            start.wait()
            results[i].append(served.predict_proba(batches[i]))

    # One BLAS thread, as `digitlab serve` runs: a multi-threaded BLAS may round a product
    # differently from a single-threaded one, and that is not what this test is about.
    with threadpool_limits(limits=1, user_api="blas"):
        expected = [served.predict_proba(b) for b in batches]
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for got, want in zip(results, expected):
        assert len(got) == rounds
        for probs in got:
            np.testing.assert_array_equal(probs, want)


def test_store_refuses_what_it_cannot_serve(tmp_path):
    from digitlab.errors import ModelError
    from digitlab.recipes import get_recipe

    with pytest.raises(ModelError, match="no model files"):
        ModelStore(tmp_path)
    with pytest.raises(ModelError, match="no such model file"):
        ModelStore(tmp_path / "missing.npz")
    with pytest.raises(ModelError, match="28x28"):
        ModelStore({"digits": get_recipe("tutorial-relu512").build().__class__(
            [*get_recipe("tutorial-relu512").layers()], input_shape=(8, 8))})
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ModelError, match="broken.npz"):
        ModelStore(tmp_path)


# ----------------------------------------------------------------------------- the command
def test_serve_command(model_files, monkeypatch, capsys):
    import threadpoolctl
    import uvicorn

    calls, blas = [], []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", lambda n, user_api: blas.append((n, user_api)))
    assert main(["serve", "--models-dir", str(model_files), "--port", "8123"]) == 0
    app, kwargs = calls[0]
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8123
    assert kwargs.items() >= UVICORN_SETTINGS.items()  # the limits on connections, in both paths
    assert [m.name for m in app.state.store] == ["alpha", "beta"]
    assert "http://127.0.0.1:8123/" in capsys.readouterr().out
    assert blas == [(1, "blas")]  # the server process runs BLAS on one thread

    assert main(["serve", "--model", str(model_files / "beta.npz")]) == 0
    assert [m.name for m in calls[1][0].state.store] == ["beta"]
    monkeypatch.delenv("DIGITLAB_SERVE", raising=False)  # restored after the test
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert main(["serve", "--models-dir", str(model_files), "--workers", "2", "--data-dir", "/data"]) == 0
    target, kwargs = calls[2]
    assert target == "digitlab.serve.app:app_from_environment" and kwargs["factory"] and kwargs["workers"] == 2
    assert kwargs.items() >= UVICORN_SETTINGS.items()
    assert json.loads(os.environ["DIGITLAB_SERVE"]) == {"models": str(model_files), "data_dir": "/data"}
    from digitlab.serve.app import app_from_environment

    assert [m.name for m in app_from_environment().state.store] == ["alpha", "beta"]

    assert main(["serve", "--model", str(model_files / "missing.npz")]) == 2
    assert "no such model file" in capsys.readouterr().err
    assert main(["serve", "--model", str(model_files / "beta.npz"), "--models-dir", str(model_files)]) == 2


# ----------------------------------------------------------------------------- a trained model
@pytest.mark.mnist
@pytest.mark.slow
def test_a_trained_model_reads_drawings_and_photos(mnist_model, mnist):
    client = TestClient(create_app(mnist_model))
    for digit in (1, 7, 2):
        for dark in (True, False):
            image = png_bytes(drawn_digit(digit, dark_on_light=dark))
            body = client.post("/api/predict", content=image, headers=PNG).json()
            assert body["digit"] == digit, (digit, dark, body["probabilities"])
    _, test = mnist
    photo = mnist_photo([test.images[0], test.images[3], test.images[4]])  # 7, 0, 4
    body = client.post("/api/predict?number=true", content=photo, headers=PNG).json()
    assert body["number"] == "704", body
    boxes = [d["box"] for d in body["digits"]]
    assert boxes == sorted(boxes) and all(left < right and top < bottom for left, top, right, bottom in boxes)
    assert json.dumps(body)  # plain JSON all the way down
