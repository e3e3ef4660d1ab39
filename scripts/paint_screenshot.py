"""A screenshot of the paint page on the default model (docs/paint_fashion.png): the page's default map
with its T-shirt label swapped for Coat, and the generated image. Needs Debian's Chromium (/usr/bin/chromium).

    python scripts/paint_screenshot.py [--out docs/paint_fashion.png]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gauguin.serve.app import PaintServer  # noqa: E402
from gauguin.serve.engine import Engine  # noqa: E402
from gauguin.serve.paint_models import SHIPPED, load_backend  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/paint_fashion.png")
    args = parser.parse_args()
    with PaintServer(Engine(load_backend(SHIPPED))) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(server.url)
        page.wait_for_function("window.gauguin.completed >= 1 && !window.gauguin.busy")
        page.select_option("#swap-from", "1")
        page.select_option("#swap-to", "5")  # T-shirt/top -> Coat
        page.click("#swap")
        page.wait_for_function("window.gauguin.completed >= 2 && !window.gauguin.busy")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
