"""The paint page (gauguin/serve/static) in a real headless browser against the real paint server.

Playwright drives Debian's Chromium (/usr/bin/chromium); the browser test is skipped only where that
binary is missing. A screenshot of the page (after a label swap: its before/after pair, and the gallery
of recent results) is left in tests/artifacts/paint_page.png.
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
needs_browser = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("GAUGUIN_REQUIRE_BROWSER"),
                                   reason=f"no Chromium at {CHROMIUM} (apt-get install chromium; CI requires it)")


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

    def idle(self) -> None:
        """Waits until no change waits to be sent and no request is out."""
        self.page.wait_for_function("!window.gauguin.busy", timeout=30_000)

    @property
    def completed(self) -> int:
        return self.page.evaluate("window.gauguin.completed")

    def result_png(self, selector: str = "#result") -> bytes:
        """The PNG an <img> shows (the result, a before/after image, a thumbnail), as the page got it."""
        url = self.page.evaluate("""async (selector) => {
            const blob = await (await fetch(document.querySelector(selector).src)).blob();
            return await new Promise(done => { const r = new FileReader(); r.onload = () => done(r.result);
                                               r.readAsDataURL(blob); });
        }""", selector)
        return base64.b64decode(url.partition(",")[2])

    def result(self, selector: str = "#result") -> np.ndarray:
        image = Image.open(io.BytesIO(self.result_png(selector)))
        assert image.size == (self.w, self.h)
        return np.asarray(image)

    def wait_compare(self) -> None:
        """Waits until the before/after pair of a swap shows both images."""
        self.page.wait_for_function("""() => ['#compare-before', '#compare-after'].every(s => {
            const img = document.querySelector(s);
            return img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0; })""", timeout=30_000)

    def tool(self) -> str:
        """The tool whose button is pressed; exactly one is."""
        pressed = [t for t in ("brush", "fill", "eraser")
                   if self.page.get_attribute(f"#tool-{t}", "aria-pressed") == "true"]
        assert len(pressed) == 1, pressed
        return pressed[0]

    def size(self) -> int:
        value = self.page.input_value("#brush-size")
        assert self.page.inner_text("#brush-size-value") == value
        return int(value)

    def history(self) -> tuple[bool, bool]:
        """Whether Undo and Redo are enabled."""
        return self.page.is_enabled("#undo"), self.page.is_enabled("#redo")

    def gallery(self) -> list[str]:
        """The gallery's captions, newest first."""
        return self.page.locator("#gallery button").all_inner_texts()

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

    def pen_stroke(self, *points) -> None:
        """A stroke of a pen (trusted pointer events with pointerType "pen", through the DevTools protocol)."""
        cdp = self.page.context.new_cdp_session(self.page)
        def send(kind, p, buttons):
            x, y = self.point(*p)
            cdp.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "buttons": buttons,
                                                  "clickCount": 1, "pointerType": "pen"})
        send("mouseMoved", points[0], 0)  # hovering: paints nothing
        send("mousePressed", points[0], 1)
        for p in points[1:]:
            send("mouseMoved", p, 1)
        send("mouseReleased", points[-1], 0)
        cdp.detach()

    def touch_stroke(self, *points) -> None:
        """A drag of one finger (touch events, which Chromium turns into pointer events of type "touch")."""
        cdp = self.page.context.new_cdp_session(self.page)
        for kind, p in [("touchStart", points[0]), *(("touchMove", p) for p in points[1:])]:
            x, y = self.point(*p)
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y, "id": 1}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        cdp.detach()


def watch(page, problems: list) -> None:
    """Collects console errors, page errors, failed requests and HTTP errors of ``page`` into ``problems``."""
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url[:80]} {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def paint(browser, server):
    """Opens the paint page in a fresh browser context (options: ``has_touch`` ...), once its first image
    shows; after the test, no console error, page error or failed request may have happened."""
    info = json.loads(get(server.url + "/api/labels")[2])
    problems = []

    def open_page(**options) -> Page:
        page = browser.new_context(viewport={"width": 1100, "height": 900}, **options).new_page()
        watch(page, problems)
        page.goto(server.url)
        ui = Page(page, info)
        ui.wait_image(0)
        return ui

    yield open_page
    assert not problems, problems


@needs_browser
def test_paint_page_in_a_browser(server):
    from playwright.sync_api import sync_playwright

    _, _, body = get(server.url + "/api/labels")
    info = json.loads(body)
    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            watch(page, problems)
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
            ui.wait_compare()  # the swap shows the image before it (the one shown then) beside the one after
            assert np.array_equal(ui.result("#compare-before"), painted_image)
            assert np.array_equal(ui.result("#compare-after"), swapped_image)

            # fill the background from the bottom-left corner, then undo it (button) and the swap (Ctrl+Z)
            n = ui.completed
            page.click('[data-label="4"]')
            page.click("#tool-fill")
            ui.click_map(0, 31)
            ui.wait_image(n)
            assert np.array_equal(ui.label_map(), flood(swapped, 0, 31, 4))
            assert page.locator("#compare").is_hidden(), "the before/after of the swap outlived the next edit"
            n = ui.completed
            page.click("#undo")
            assert np.array_equal(ui.label_map(), swapped)
            page.keyboard.press("Control+z")
            assert np.array_equal(ui.label_map(), painted)
            ui.wait_image(n)
            assert np.array_equal(ui.result(), painted_image), "same map and seed, different image"

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


@needs_browser
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


@needs_browser
def test_shortcuts_and_undo_redo(paint):
    """B / F / E pick the tool, [ and ] the brush size within its range, Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y undo
    and redo strokes, fills, clear, swap and uploads to the exact pixels; no shortcut fires in a text field."""
    ui = paint()
    page = ui.page
    legend = page.inner_text("#shortcuts")
    for key in ["B", "F", "E", "[", "]", "Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+Y", "N"]:
        assert key in legend.replace(" + ", "+").replace("\n", " "), (key, legend)
    assert page.locator("#shortcuts").is_visible()
    titles = {s: page.get_attribute(s, "title") for s in ["#tool-brush", "#tool-fill", "#tool-eraser", "#undo",
                                                          "#redo", "#brush-size", "#new-style"]}
    assert "(B)" in titles["#tool-brush"] and "(F)" in titles["#tool-fill"] and "(E)" in titles["#tool-eraser"]
    assert "Ctrl+Z" in titles["#undo"] and "Ctrl+Shift+Z" in titles["#redo"] and "Ctrl+Y" in titles["#redo"]
    assert "[" in titles["#brush-size"] and "]" in titles["#brush-size"] and "(N)" in titles["#new-style"]

    # tools and brush size
    assert ui.tool() == "brush" and ui.size() == 3 and ui.history() == (False, False)
    for key, tool in [("f", "fill"), ("e", "eraser"), ("b", "brush"), ("Shift+KeyF", "brush")]:
        page.keyboard.press(key)
        assert ui.tool() == tool, key
    page.keyboard.press("]")
    assert ui.size() == 4
    for _ in range(2):
        page.keyboard.press("[")
    assert ui.size() == 2
    for _ in range(4):
        page.keyboard.press("[")
    assert ui.size() == 1, "[ went below the slider's minimum"
    for _ in range(20):
        page.keyboard.press("]")
    assert ui.size() == 16 == int(page.get_attribute("#brush-size", "max")), "] went past the slider's maximum"
    page.eval_on_selector("#brush-size", "el => { el.value = 3; el.dispatchEvent(new Event('input')); }")

    # history: a stroke, a fill, undone and redone with the keys and the buttons
    m0, n = ui.label_map(), ui.completed
    page.click('[data-label="3"]')
    ui.stroke((2, 2), (29, 2))
    m1 = ui.label_map()
    assert (m1[1:4, 2:30] == 3).all() and np.array_equal(m1[5:], m0[5:])
    assert ui.history() == (True, False)
    page.keyboard.press("f")
    page.click('[data-label="4"]')
    ui.click_map(0, 31)
    m2 = ui.label_map()
    assert np.array_equal(m2, flood(m1, 0, 31, 4))
    page.keyboard.press("Control+z")
    assert np.array_equal(ui.label_map(), m1) and ui.history() == (True, True)
    page.keyboard.press("Control+z")
    assert np.array_equal(ui.label_map(), m0) and ui.history() == (False, True)
    page.keyboard.press("Control+z")  # nothing left to undo
    assert np.array_equal(ui.label_map(), m0)
    page.keyboard.press("Control+Shift+KeyZ")
    assert np.array_equal(ui.label_map(), m1) and ui.history() == (True, True)
    page.keyboard.press("Control+y")
    assert np.array_equal(ui.label_map(), m2) and ui.history() == (True, False)
    page.click("#undo")
    assert np.array_equal(ui.label_map(), m1) and ui.history() == (True, True)
    # a new stroke after an undo: the redo stack is gone
    page.keyboard.press("b")
    page.click('[data-label="5"]')
    ui.stroke((4, 20), (27, 20))
    m3 = ui.label_map()
    assert not np.array_equal(m3, m1) and ui.history() == (True, False)
    page.keyboard.press("Control+y")
    assert np.array_equal(ui.label_map(), m3), "redo after a new stroke brought back an undone edit"
    page.keyboard.press("Control+z")  # the whole stroke is one step
    assert np.array_equal(ui.label_map(), m1)

    # typing in the seed field or a select: its keys, no shortcut (a number field's "e" is its exponent)
    page.focus("#seed")
    for key in ["f", "e", "[", "]", "Control+z", "Control+y"]:
        page.keyboard.press(key)
    assert ui.tool() == "brush" and ui.size() == 3 and np.array_equal(ui.label_map(), m1)
    page.focus("#swap-from")
    page.keyboard.press("Control+z")
    assert np.array_equal(ui.label_map(), m1)
    page.eval_on_selector("#swap-from", "el => el.blur()")
    ui.wait_image(n)
    page.fill("#seed", "0")

    # clear, swap and an upload: each one step, undone and redone
    page.click("#clear")
    assert not ui.label_map().any()
    page.keyboard.press("Control+z")
    assert np.array_equal(ui.label_map(), m1)
    page.keyboard.press("Control+Shift+KeyZ")
    assert not ui.label_map().any()
    page.keyboard.press("Control+z")
    page.select_option("#swap-from", "3")
    page.select_option("#swap-to", "7")
    page.click("#swap")
    assert np.array_equal(ui.label_map(), np.where(m1 == 3, 7, m1))
    page.keyboard.press("Control+z")
    assert np.array_equal(ui.label_map(), m1) and page.locator("#compare").is_hidden()
    page.keyboard.press("Control+y")
    assert np.array_equal(ui.label_map(), np.where(m1 == 3, 7, m1))
    page.keyboard.press("Control+z")
    ids = np.zeros((32, 32), np.uint8)
    ids[8:24, 4:12] = 6
    page.set_input_files("#upload-labels", files=[{"name": "ids.png", "mimeType": "image/png", "buffer": png(ids)}])
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('loaded ids.png')")
    assert np.array_equal(ui.label_map(), ids) and ui.history() == (True, False)
    page.keyboard.press("Control+z")
    assert np.array_equal(ui.label_map(), m1)
    page.click("#redo")
    assert np.array_equal(ui.label_map(), ids) and ui.history() == (True, False)
    ui.idle()
    assert page.evaluate("window.gauguin.requests") == ui.completed


@needs_browser
def test_pen_and_touch_paint(paint):
    """A pen and a finger paint through the same Pointer Events path as the mouse; a tap fills."""
    script = (STATIC / "paint.js").read_text()
    assert not re.search(r"\b(mouse|touch)(down|move|up|start|end|cancel)\b", script), "handlers besides Pointer Events"
    ui = paint(has_touch=True)
    page = ui.page
    assert page.eval_on_selector("#paint", "el => getComputedStyle(el).touchAction") == "none"
    page.evaluate("""() => { window.pointerTypes = [];
        document.querySelector('#paint').addEventListener('pointerdown', e => pointerTypes.push(e.pointerType)); }""")
    before, n = ui.label_map(), ui.completed
    page.click('[data-label="3"]')
    ui.pen_stroke((2, 5), (15, 5), (29, 5))  # size 3: rows 4..6, columns 1..30
    expected = before.copy()
    expected[4:7, 1:31] = 3
    assert np.array_equal(ui.label_map(), expected), "the pen's stroke"
    page.click('[data-label="5"]')
    ui.touch_stroke((20, 10), (20, 18), (20, 27))  # rows 9..28, columns 19..21
    expected[9:29, 19:22] = 5
    assert np.array_equal(ui.label_map(), expected), "the finger's stroke"
    page.keyboard.press("f")
    page.click('[data-label="4"]')
    page.touchscreen.tap(*ui.point(0, 31))
    expected = flood(expected, 0, 31, 4)
    assert np.array_equal(ui.label_map(), expected), "a tap with the fill tool"
    assert page.evaluate("pointerTypes") == ["pen", "touch", "touch"]
    page.keyboard.press("Control+z")  # the tap, and the finger's stroke is one step too
    page.keyboard.press("Control+z")
    expected = before.copy()
    expected[4:7, 1:31] = 3
    assert np.array_equal(ui.label_map(), expected)
    ui.wait_image(n)


@needs_browser
def test_swap_before_after_and_gallery(paint, server):
    """The gallery keeps the last 6 results, newest first, and a click shows one again with its seed; a swap
    shows the image before it beside the one after it, until the next edit or Dismiss."""
    ui = paint()
    page = ui.page
    assert ui.gallery() == ["seed 0"] and page.locator("#compare").is_hidden()
    images = {0: ui.result()}
    for seed in range(11, 17):
        n = ui.completed
        page.fill("#seed", str(seed))
        ui.wait_image(n)
        images[seed] = ui.result()
        assert ui.gallery() == [f"seed {s}" for s in range(seed, 10, -1)] + ["seed 0"] * (seed < 16)
    assert len(ui.gallery()) == 6 and page.get_attribute("#gallery li:first-child button", "aria-current") == "true"
    assert np.array_equal(ui.result("#gallery li:first-child img"), images[16])
    thumb = page.locator('#gallery button[data-seed="13"]')
    thumb.click()
    page.wait_for_function("document.querySelector('#seed').value === '13'")
    assert np.array_equal(ui.result(), images[13]) and thumb.get_attribute("aria-current") == "true"
    assert page.locator("#gallery [aria-current]").count() == 1 and "seed 13" in page.inner_text("#status")

    # a swap while the result shows an older image: the page generates the image before the swap
    n = ui.completed
    page.select_option("#swap-from", "1")
    page.select_option("#swap-to", "2")
    page.click("#swap")
    assert page.locator("#compare").is_visible()
    ui.wait_image(n)
    ui.wait_compare()
    swapped = ui.result()
    before, after = ui.result("#compare-before"), ui.result("#compare-after")
    assert np.array_equal(before, images[13]), "before: the image of the map before the swap, seed 13"
    assert np.array_equal(after, swapped) and not np.array_equal(after, before)
    assert "seed 13" in page.inner_text("#status") and ui.gallery()[0] == "seed 13" and len(ui.gallery()) == 6
    page.click("#compare-dismiss")
    assert page.locator("#compare").is_hidden()

    # a swap back, the image before it is the one shown
    n = ui.completed
    page.select_option("#swap-from", "2")
    page.select_option("#swap-to", "1")
    page.click("#swap")
    ui.wait_image(n)
    ui.wait_compare()
    assert np.array_equal(ui.result("#compare-before"), swapped)
    assert np.array_equal(ui.result("#compare-after"), ui.result())
    assert np.array_equal(ui.result(), images[13]), "swapped back: the image of the first map"
    assert page.get_by_text("Before swap").is_visible() and page.get_by_text("After swap").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "paint_page.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    n = ui.completed
    ui.stroke((2, 2), (10, 2))  # the next edit ends the comparison
    assert page.locator("#compare").is_hidden()
    ui.wait_image(n)
    assert len(ui.gallery()) == 6
