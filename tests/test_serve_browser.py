"""The page in a real headless Chromium (Playwright): draw a 1 and a 7 with the mouse, see the
network read them and the bars move, undo, clear, read a photo, switch models (an untrained one is
not sure), open the confusion matrix, all within the page's Content-Security-Policy; and the page on
a phone-sized screen. Screenshots go to the test's output folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web server needs the 'web' extra")
playwright = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip install playwright)")

from conftest import MNIST_DIR, MNIST_MISSING  # noqa: E402
from digitlab.serve import create_app  # noqa: E402
from serve_support import STROKES, mnist_photo, serve_in_thread, tiny_model  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.mnist,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: apt-get install chromium"),
    pytest.mark.skipif(MNIST_DIR is None, reason=MNIST_MISSING),
]


@pytest.fixture(scope="module")
def server(mnist_model):
    """A real uvicorn server on a free loopback port, in a thread, serving a trained model and a tiny one."""
    with serve_in_thread(create_app({"cnn-fast": mnist_model, "tiny": tiny_model()}, data_dir=MNIST_DIR)) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def draw(page, digit: int) -> None:
    """Draw a digit's strokes on the canvas with the mouse, a few pointer moves per segment."""
    box = page.locator("#canvas").bounding_box()
    for stroke in STROKES[digit]:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=6)
        page.mouse.up()


def local_only(context, server: str) -> list[str]:
    """Refuse every request that does not go to ``server`` (a CDN, fonts, ...); returns the list
    of refused URLs, which a page that serves all its assets itself leaves empty."""
    refused = []

    def route(r):
        if r.request.url.startswith(server):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return refused


def answered(page) -> None:
    """Wait until the page has the answer for the drawing as it is now (no request pending)."""
    page.wait_for_selector("#result:not([data-pending])", state="attached", timeout=15_000)


def bar_widths(page) -> list[float]:
    return page.eval_on_selector_all(".bar .fill", "els => els.map(e => parseFloat(e.style.width) || 0)")


def test_draw_a_one_and_a_seven_then_read_a_photo(server, browser, mnist, tmp_path):
    expect = playwright.expect
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    refused = local_only(context, server)
    page = context.new_page()
    errors, blocked = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(server)
    expect(page.locator("#architecture tbody tr")).to_have_count(13)
    expect(page.locator("#model-name")).to_contain_text("cnn-fast")
    assert bar_widths(page) == [0.0] * 10

    draw(page, 1)
    answered(page)
    expect(page.locator("#digit")).to_have_text("1")
    assert page.get_attribute("#seen", "src").startswith("data:image/png;base64,")
    one = bar_widths(page)
    assert max(one) == one[1] > 50
    page.screenshot(path=str(tmp_path / "drew-1.png"))

    page.click("#clear")
    answered(page)
    expect(page.locator("#digit")).to_have_text("?")
    assert bar_widths(page) == [0.0] * 10

    draw(page, 7)
    answered(page)
    expect(page.locator("#digit")).to_have_text("7")
    seven = bar_widths(page)
    assert seven != one and max(seven) == seven[7] > 50
    assert page.locator(".bar.top").get_attribute("data-digit") == "7"

    draw(page, 1)  # a stray stroke across the 7 ...
    answered(page)
    page.click("#undo")  # ... taken back
    answered(page)
    expect(page.locator("#digit")).to_have_text("7")
    assert bar_widths(page) == seven
    page.screenshot(path=str(tmp_path / "drew-7.png"))

    _, test = mnist
    photo = mnist_photo([test.images[0], test.images[4]])  # 7 and 4
    page.set_input_files("#photo-input", files=[{"name": "number.png", "mimeType": "image/png", "buffer": photo}])
    expect(page.locator("#photo-number")).to_have_text("74", timeout=10_000)
    expect(page.locator("#photo-digits figure")).to_have_count(2)

    page.click("#confusion-load")
    expect(page.locator("#confusion table tr")).to_have_count(11, timeout=20_000)
    expect(page.locator("#gallery figure").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

    expect(page.locator("#model-picker")).to_be_visible()
    page.select_option("#model-select", "tiny")
    expect(page.locator("#model-name")).to_contain_text("tiny")
    expect(page.locator("#architecture tbody tr")).to_have_count(6)
    answered(page)  # the 7 again, by an untrained model: under the page's threshold (50%)
    expect(page.locator("#digit")).to_have_text("?")
    expect(page.locator("#confidence")).to_contain_text("not sure")

    page.goto(server + "/docs")  # Swagger UI, from local files, renders the OpenAPI 3.1 schema
    expect(page.locator(".opblock-summary-path", has_text="/api/predict/batch")).to_be_visible(timeout=15_000)
    expect(page.locator(".opblock-summary-path", has_text="/v2/models/{name}/infer").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "docs.png"))
    assert errors == [] and refused == [] and blocked == []  # nothing the Content-Security-Policy refused
    context.close()
    _keep(tmp_path)


def test_the_page_fits_a_phone(server, browser, tmp_path):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                  is_mobile=True, has_touch=True)
    refused = local_only(context, server)
    page = context.new_page()
    page.goto(server)
    playwright.expect(page.locator("#architecture tbody tr")).to_have_count(13)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the screen
    canvas = page.locator("#canvas").bounding_box()
    assert canvas["width"] >= 200 and canvas["x"] + canvas["width"] <= 390
    assert page.locator("#digit").bounding_box()["y"] < 844  # the answer shows beside the canvas' screen
    page.screenshot(path=str(tmp_path / "phone.png"))
    assert refused == []
    context.close()
    _keep(tmp_path)


def _keep(folder: Path) -> None:
    """Copy the screenshots to tests/output/ too, where a person (or CI's artefacts) can find them."""
    out = Path(__file__).parent / "output"
    out.mkdir(exist_ok=True)
    for png in folder.glob("*.png"):
        shutil.copy(png, out / png.name)
