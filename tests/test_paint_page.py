"""The paint page (gauguin/serve/static) in a real headless browser against the real paint server.

Playwright drives Debian's Chromium (/usr/bin/chromium); the browser test is skipped only where that
binary is missing. A screenshot of the page is left in tests/artifacts/paint_page.png.
"""
import base64
import io
import json
import os
import re
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(__file__).parent / "artifacts"
STATIC = Path(__file__).parent.parent / "gauguin" / "serve" / "static"


@pytest.fixture(scope="module")
def server(paint_checkpoint):
    from gauguin.serve.app import PaintServer
    from gauguin.serve.engine import Engine, TorchBackend

    with PaintServer(Engine(TorchBackend(paint_checkpoint))) as server:
        yield server


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("content-type", ""), response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("content-type", ""), err.read()


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def flood(ids: np.ndarray, x: int, y: int, label: int) -> np.ndarray:
    """The expected result of the page's 4-connected fill."""
    out, old = ids.copy(), ids[y, x]
    todo = deque([(y, x)])
    out[y, x] = label
    while todo:
        cy, cx = todo.popleft()
        for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
            if 0 <= ny < out.shape[0] and 0 <= nx < out.shape[1] and out[ny, nx] == old:
                out[ny, nx] = label
                todo.append((ny, nx))
    return out


class Page:
    """The paint page with helpers that read what it shows (label map, result image) and paint on it."""

    def __init__(self, page, info: dict):
        self.page = page
        self.h, self.w = info["image_size"]
        self.ids = {tuple(label["color"]): label["id"] for label in info["labels"]}

    def wait_image(self, before: int) -> None:
        """Waits until an image newer than generation ``before`` shows and no change waits to be sent."""
        self.page.wait_for_function("n => window.gauguin.completed > n && !window.gauguin.busy", arg=before,
                                    timeout=30_000)

    @property
    def completed(self) -> int:
        return self.page.evaluate("window.gauguin.completed")

    def result_png(self) -> bytes:
        url = self.page.evaluate("""async () => {
            const blob = await (await fetch(document.querySelector('#result').src)).blob();
            return await new Promise(done => { const r = new FileReader(); r.onload = () => done(r.result);
                                               r.readAsDataURL(blob); });
        }""")
        return base64.b64decode(url.partition(",")[2])

    def result(self) -> np.ndarray:
        image = Image.open(io.BytesIO(self.result_png()))
        assert image.size == (self.w, self.h)
        return np.asarray(image)

    def label_map(self) -> np.ndarray:
        """The canvas's pixels as label ids; every pixel must be exactly a label's colour."""
        rgba = np.array(self.page.evaluate("""() => { const c = document.querySelector('#paint');
            return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }"""), np.uint8)
        rgb = rgba.reshape(self.h, self.w, 4)[..., :3]
        colours = {tuple(c) for c in rgb.reshape(-1, 3).tolist()}
        assert colours <= set(self.ids), f"blended colours on the canvas: {colours - set(self.ids)}"
        return np.array([[self.ids[tuple(c)] for c in row] for row in rgb.tolist()])

    def point(self, x: float, y: float) -> tuple[float, float]:
        """Page coordinates of the centre of map pixel (x, y)."""
        box = self.page.locator("#paint").bounding_box()
        return box["x"] + (x + 0.5) * box["width"] / self.w, box["y"] + (y + 0.5) * box["height"] / self.h

    def stroke(self, *points, steps: int = 1) -> None:
        mouse = self.page.mouse
        mouse.move(*self.point(*points[0]))
        mouse.down()
        for p in points[1:]:
            mouse.move(*self.point(*p), steps=steps)  # steps=1: one jump, the page must fill the gap
        mouse.up()

    def click_map(self, x: int, y: int) -> None:
        self.page.mouse.click(*self.point(x, y))


@pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("GAUGUIN_REQUIRE_BROWSER"),
                    reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; CI requires it)")
def test_paint_page_in_a_browser(server):
    from playwright.sync_api import sync_playwright

    _, _, body = get(server.url + "/api/labels")
    info = json.loads(body)
    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
            page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url[:80]} {r.failure}"))
            page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
            page.goto(server.url)
            ui = Page(page, info)
            ui.wait_image(0)  # the default map is generated on load
            assert page.title() == "gauguin paint"
            assert "spade" in page.inner_text("#model") and "32×32" in page.inner_text("#model")
            assert page.locator("#palette [data-label]").count() == len(info["labels"]) == 11
            assert page.locator("#style-upload").is_visible() and page.locator("#seed").is_visible()
            start_map, start_image = ui.label_map(), ui.result()
            assert set(np.unique(start_map)) == {0, 1}, "default map: background and a blob of label 1"

            # two strokes in two labels; the first is one fast jump across the map (interpolated, no gaps)
            n = ui.completed
            page.click('[data-label="3"]')
            ui.stroke((2, 2), (29, 2))
            page.click('[data-label="5"]')
            ui.stroke((4, 16), (27, 16), (27, 28), steps=3)
            page.click("#tool-eraser")  # a 1-pixel eraser line through the second stroke
            page.eval_on_selector("#brush-size", "el => { el.value = 1; el.dispatchEvent(new Event('input')); }")
            assert page.inner_text("#brush-size-value") == "1"
            ui.stroke((10, 13), (10, 19))
            ui.wait_image(n)
            painted, painted_image = ui.label_map(), ui.result()
            assert (painted[1:4, 2:30] == 3).all(), "the fast stroke left gaps"
            assert (painted[15:18, 4:10] == 5).all() and (painted[15:18, 11:28] == 5).all()
            assert (painted[16:29, 27] == 5).all() and (painted[13:20, 10] == 0).all()
            assert (painted[:, 31] == 0).all() and (painted[31] == 0).all(), "strokes went past their ends"
            assert not np.array_equal(painted_image, start_image), "the image ignored the strokes"

            # swap T-shirt (1) for Trouser (2) across the whole map
            n = ui.completed
            page.select_option("#swap-from", "1")
            page.select_option("#swap-to", "2")
            page.click("#swap")
            ui.wait_image(n)
            swapped, swapped_image = ui.label_map(), ui.result()
            assert (painted == 1).any() and not (swapped == 1).any()
            assert np.array_equal(swapped, np.where(painted == 1, 2, painted))
            assert not np.array_equal(swapped_image, painted_image), "the image ignored the swap"

            # fill the background from the bottom-left corner, then undo it (button) and the swap (Ctrl+Z)
            n = ui.completed
            page.click('[data-label="4"]')
            page.click("#tool-fill")
            ui.click_map(0, 31)
            ui.wait_image(n)
            assert np.array_equal(ui.label_map(), flood(swapped, 0, 31, 4))
            n = ui.completed
            page.click("#undo")
            assert np.array_equal(ui.label_map(), swapped)
            page.keyboard.press("Control+z")
            assert np.array_equal(ui.label_map(), painted)
            ui.wait_image(n)
            assert np.array_equal(ui.result(), painted_image), "same map and seed, different image"
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "paint_page.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")

            # a seed, then a style image (this model has a style encoder), then back to the seed
            n = ui.completed
            page.fill("#seed", "7")
            ui.wait_image(n)
            seed_image = ui.result()
            assert not np.array_equal(seed_image, painted_image), "the seed did not change the style"
            rng = np.random.default_rng(0)
            style = (np.linspace(0, 255, 48)[None, :, None] * rng.uniform(0.2, 1, (48, 1, 3))).astype(np.uint8)
            n = ui.completed
            page.set_input_files("#style-file", files=[{"name": "style.png", "mimeType": "image/png",
                                                         "buffer": png(style)}])
            ui.wait_image(n)
            assert not np.array_equal(ui.result(), seed_image), "the style image did not change the image"
            assert page.locator("#clear-style").is_visible()
            n = ui.completed
            page.click("#clear-style")
            ui.wait_image(n)
            assert np.array_equal(ui.result(), seed_image)
            # a photo larger than the server's pixel limit (3000x2000) is scaled down by the page first
            big = np.broadcast_to(np.linspace(0, 255, 3000, dtype=np.uint8)[None, :, None], (2000, 3000, 3))
            n = ui.completed
            page.set_input_files("#style-file", files=[{"name": "photo.png", "mimeType": "image/png",
                                                         "buffer": png(np.ascontiguousarray(big))}])
            ui.wait_image(n)
            assert not np.array_equal(ui.result(), seed_image) and "error" not in page.inner_text("#status")
            n = ui.completed
            page.click("#clear-style")
            ui.wait_image(n)

            # upload a map of grey label ids at twice the size (resized nearest), and one of unknown colours
            ids = np.zeros((64, 64), np.uint8)
            ids[10:50, 20:40] = 6
            n = ui.completed
            page.set_input_files("#upload-labels", files=[{"name": "ids.png", "mimeType": "image/png",
                                                           "buffer": png(ids)}])
            ui.wait_image(n)
            assert np.array_equal(ui.label_map(), ids[::2, ::2])
            wrong = np.full((32, 32, 3), (1, 2, 3), np.uint8)
            page.set_input_files("#upload-labels", files=[{"name": "wrong.png", "mimeType": "image/png",
                                                           "buffer": png(wrong)}])
            page.wait_for_selector("#status.error")
            assert "#010203" in page.inner_text("#status")
            assert np.array_equal(ui.label_map(), ids[::2, ::2]), "a rejected upload changed the map"

            # clear, undone with Ctrl+Z
            n = ui.completed
            page.click("#clear")
            assert not ui.label_map().any()
            page.keyboard.press("Control+z")
            assert np.array_equal(ui.label_map(), ids[::2, ::2])
            ui.wait_image(n)

            # downloads: the map in label colours, which uploads again as the same map, and the shown image
            with page.expect_download() as download:
                page.click("#download-labels")
            saved = np.asarray(Image.open(download.value.path()).convert("RGB"))
            assert np.array_equal(np.vectorize(lambda *c: ui.ids[c])(*saved.transpose(2, 0, 1)), ids[::2, ::2])
            n = ui.completed
            page.set_input_files("#upload-labels", download.value.path())
            ui.wait_image(n)
            assert np.array_equal(ui.label_map(), ids[::2, ::2])
            with page.expect_download() as download:
                page.click("#download-result")
            assert Path(download.value.path()).read_bytes() == ui.result_png()

            assert page.evaluate("window.gauguin.requests") == ui.completed  # each request answered
        finally:
            browser.close()
    assert not problems, problems


def test_static_assets_and_no_path_traversal(server):
    status, kind, page = get(server.url + "/")
    assert status == 200 and kind.startswith("text/html")
    html = page.decode()
    assert 'src="static/paint.js"' in html and 'href="static/paint.css"' in html
    for name, kind_prefix in [("paint.js", "text/javascript"), ("paint.css", "text/css"), ("index.html", "text/html")]:
        status, kind, body = get(f"{server.url}/static/{name}")
        assert status == 200 and kind.startswith(kind_prefix), (name, status, kind)
        assert body == (STATIC / name).read_bytes()
        assert not re.search(rb"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", body), f"{name} loads from another site"
    for path in ["/static/../app.py", "/static/%2e%2e/engine.py", "/static/..%2fapp.py",
                 "/static/../../../pyproject.toml", "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml",
                 "/static/", "/static/missing.js"]:
        status, _, body = get(server.url + path)
        assert status == 404, (path, status, body[:100])


@pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("GAUGUIN_REQUIRE_BROWSER"),
                    reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; CI requires it)")
def test_page_on_an_onnx_export_without_style_inputs(tmp_path):
    """A SPADE without the style encoder, served from its ONNX export: the page hides the style controls
    it cannot use, takes the checkpoint's own label names, and still paints."""
    from playwright.sync_api import sync_playwright
    from test_export import make_checkpoint, semantic_data, spade_weights

    from gauguin.serve.app import PaintServer
    from gauguin.serve.engine import Engine, OnnxBackend
    from gauguin.serve.export import export

    source = make_checkpoint(tmp_path / "run", "spade", semantic_data(instances=False), prepare=spade_weights,
                             image_size=32, ngf=4, ndf=4)
    export(source, tmp_path / "onnx")
    with PaintServer(Engine(OnnxBackend(tmp_path / "onnx"))) as server, sync_playwright() as playwright:
        info = json.loads(get(server.url + "/api/labels")[2])
        assert info["style"] == {"seed": False, "image": False}
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(server.url)
            ui = Page(page, info)
            ui.wait_image(0)
            assert not page.locator("#seed").is_visible() and not page.locator("#style-upload").is_visible()
            assert page.inner_text("#palette").split("\n")[:2] == ["sky", "tree"]
            before, n = ui.result(), ui.completed
            page.click('[data-label="3"]')
            ui.stroke((2, 2), (29, 29))
            ui.wait_image(n)
            assert (ui.label_map() == 3).sum() > 20 and np.abs(ui.result().astype(int) - before).max() > 0
        finally:
            browser.close()
