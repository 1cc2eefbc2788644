"""The category loop in a real browser: Debian's chromium (scripts/setup installs it) driven by
Playwright through ``executable_path`` (the browsers Playwright downloads cannot be fetched here),
against ``milvus-hash serve``'s app on a real Milvus Lite store of real pictures. Screenshots are
kept in ``test-artifacts/`` (or ``$MILVUS_HASH_ARTIFACTS``)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from test_web import grid_ids, world  # noqa: F401 (fixture)

from milvus_hash import HashClient

ROOT = Path(__file__).resolve().parents[1]
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

pytestmark = [pytest.mark.lite,
              pytest.mark.skipif(BROWSER is None, reason="no chromium on this machine: scripts/setup installs "
                                                         "Debian's (apt-get install chromium) where it runs as root")]


@pytest.fixture
def served(world, tmp_path):  # noqa: F811
    """The page on a free port, served by uvicorn in a thread, over a client of the world's store."""
    import uvicorn

    from ingestion.web.app import create_app
    from ingestion.web.files import Files

    client = HashClient(world["db"], collection="c", library=world["lib"])
    app = create_app(client, files=Files(cache_dir=tmp_path / "thumbs"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the page's server did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", client
    finally:
        server.should_exit = True
        thread.join(10)
        for name in client.categories():
            client.drop(name)
        client.close()


def test_select_define_mark_wrong_in_a_real_browser(served, world):  # noqa: F811
    from playwright.sync_api import sync_playwright

    url, client = served
    shots = Path(os.environ.get("MILVUS_HASH_ARTIFACTS", ROOT / "test-artifacts"))
    shots.mkdir(parents=True, exist_ok=True)
    sevens = [world["ids"][k] for k in sorted(world["ids"]) if k.startswith("digits/7/")][:5]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BROWSER, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # the sevens are on the browse pages: go to the one of the first, tick five
        page.goto(f"{url}/similar?id={sevens[0]}")
        page.wait_for_load_state("networkidle")
        for i in sevens:
            box = page.locator(f'figure[data-id="{i}"] input[type=checkbox]')
            if box.count() == 0:  # not among the first 100 nearest: open the browse page holding it
                page.goto(f"{url}/?after={i - 1}")
                box = page.locator(f'figure[data-id="{i}"] input[type=checkbox]')
            box.first.check()
        assert page.locator("#selection .count").inner_text().startswith(("1 selected", "2 selected", "3 selected",
                                                                          "4 selected", "5 selected"))
        page.screenshot(path=str(shots / "web-1-selected.png"), full_page=False)
        # a navigation loses ticks on other pages: tick all five on one page, the merged search of them
        page.goto(f"{url}/similar?" + "&".join(f"id={i}" for i in sevens))
        for i in sevens:
            page.locator(f'#results figure[data-id="{i}"] input[type=checkbox]').check()
        assert page.locator("#selection .count").inner_text() == "5 selected:"
        page.fill('input[name="name"]', "sevens")
        page.click("text=Define a category")
        page.wait_for_url(f"{url}/category/sevens")
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").inner_text() == "Category “sevens”" or "sevens" in page.locator("h1").inner_text()
        page.screenshot(path=str(shots / "web-2-members.png"), full_page=False)
        # every thumbnail on screen loaded as a picture
        loaded = page.evaluate("Array.from(document.querySelectorAll('#results img')).slice(0, 12)"
                               ".map(i => i.complete && i.naturalWidth > 0)")
        assert loaded and all(loaded)
        before = client.describe("sevens")
        wrong = []
        for _ in range(3):
            ids = grid_ids(page.content())
            target = next(i for i in ids if i not in sevens and i not in wrong)
            wrong.append(target)
            page.locator(f'#results figure[data-id="{target}"] button.wrong').click()
            page.wait_for_load_state("networkidle")
            assert target not in grid_ids(page.content())
        page.screenshot(path=str(shots / "web-3-after-marks.png"), full_page=True)
        shown = grid_ids(page.content())
        assert not set(shown) & set(wrong)
        after = client.describe("sevens")
        assert before["negatives"] == 0 and after["negatives"] == 3 and len(after["rounds"]) == 3
        assert set(client.category("sevens").marked_ids()[1].tolist()) == set(wrong)
        assert "Marked wrong (3)" in page.content()
        assert not errors, errors
        browser.close()
