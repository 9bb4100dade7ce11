"""The page of `serve --mirror` in a real headless Chromium (the system one, driven by Playwright):
the table lists the runs, a comparison chart draws one series per run, an asset downloads with
its stored bytes, and nothing but the server itself is ever requested."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cometx_mirror.server.mirror_serve import serve_mirror
from serve_mirror_fixtures import build_mixed_mirror, index

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS = Path(__file__).parent.parent / "docs"
# The README's screenshots are remade only when asked, so a test run leaves the tree as it found it.
SHOTS_TO_DOCS = os.environ.get("COMETX_MIRROR_SCREENSHOTS") == "docs"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def page_env(seeded, tmp_path_factory):
    from playwright.sync_api import sync_playwright
    path = build_mixed_mirror(seeded, tmp_path_factory.mktemp("serve-page"))
    handle = serve_mirror(str(path))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 800})
        outside = []

        def only_this_server(route):
            if urlsplit(route.request.url).netloc != urlsplit(handle.url).netloc:
                outside.append(route.request.url)
                return route.abort()
            return route.continue_()
        context.route("**/*", only_this_server)
        page = context.new_page()
        yield path, handle, page, outside
        browser.close()
    handle.stop()


def test_table_chart_and_asset_in_a_browser(page_env, seeded, tmp_path):
    path, handle, page, outside = page_env
    shots = DOCS if SHOTS_TO_DOCS else tmp_path
    page.goto(handle.url + "/#/p/alice/proj-a")
    page.wait_for_selector("#experiments tbody tr")
    shown = set(page.locator("#experiments tbody tr").evaluate_all("rows => rows.map(r => r.dataset.key)"))
    assert shown == set(seeded.keys)
    page.fill("#filter", "run-1")
    assert page.locator("#experiments tbody tr").count() == 1

    page.goto(handle.url + "/#/c/" + ",".join(seeded.keys))
    page.select_option("#metric", "loss")
    page.wait_for_function("() => document.querySelector('canvas') && document.querySelector('canvas').dataset.series")
    assert page.locator("canvas").first.get_attribute("data-series") == "2"
    page.screenshot(path=str(shots / "serve-compare.png"))

    key = seeded.keys[0]
    page.goto(handle.url + f"/#/e/{key}")
    page.wait_for_selector("#assets a")
    page.wait_for_function("() => [...document.querySelectorAll('canvas')].every(c => c.dataset.series)")
    page.screenshot(path=str(shots / "serve-experiment.png"), full_page=False)
    with page.expect_download() as info:
        page.locator("#assets a", has_text="model.ckpt").click()
    assert Path(info.value.path()).read_bytes() == b"\x00\x01" * 500
    assert outside == []
