"""The web page (`milvus-hash serve`) on a real Milvus Lite store of real pictures: the pages, the
category loop through them, equal to the client's own answers; its safety (escaping, files only from
the ingested folders, CSRF, the token, uploads, a Milvus that stops answering); the static contact
sheets of `members --html` and `search --html`."""

from __future__ import annotations

import io
import json
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_digit_pngs
from PIL import Image

from ingestion.cli import cli
from ingestion.sources import open_source
from milvus_hash import HashClient, HashStore


EVIL = "<img src=x onerror=alert(1)>.png"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """200 digit PNGs (20 a class) ingested into a Lite file, one named like markup, one a symbolic
    link to a picture outside the folder; the library."""
    base = tmp_path_factory.mktemp("web")
    root = write_digit_pngs(base / "digits", 20)
    shutil.copy(next((root / "3").glob("*.png")), root / "3" / EVIL)
    outside = base / "secret.png"
    shutil.copy(next((root / "4").glob("*.png")), outside)
    (root / "4" / "link-out.png").symlink_to(outside)
    lib, db = base / "lib.npz", str(base / "web.db")
    run = CliRunner().invoke
    res = run(cli, ["hypertrain", str(root), "--backbone", "pixels", "--size", "8", "--rounds", "8",
                    "--categories", "10", "--expand", "6", "--out", str(lib), "--quiet"])
    assert res.exit_code == 0, res.output
    res = run(cli, ["ingest", str(root), "--collection", "c", "--encoder", str(lib), "--uri", db, "--quiet"])
    assert res.exit_code == 0, res.output
    ids = {it.key: it.id for it in open_source(root).items()}
    return {"root": root, "lib": lib, "db": db, "ids": ids, "outside": outside}


@pytest.fixture
def page(world, tmp_path):
    from starlette.testclient import TestClient

    from ingestion.web.app import create_app
    from ingestion.web.files import Files

    with HashClient(world["db"], collection="c", library=world["lib"]) as client:
        app = create_app(client, files=Files(cache_dir=tmp_path / "thumbs"))
        with TestClient(app, follow_redirects=False) as http:
            http.csrf = app.state.csrf
            http.hash_client = client
            yield http
        for name in client.categories():
            client.drop(name)


def tile_ids(html: str) -> list[int]:
    return [int(v) for v in re.findall(r'<figure class="tile[^"]*" data-id="(\d+)"', html)]


def grid_ids(html: str) -> list[int]:
    """The ids of the main grid (not the 'searched from' or 'marked wrong' strips)."""
    main = html.split('<div class="grid" id="results">', 1)[-1].split("<!-- /results -->", 1)[0] \
        if 'id="results"' in html else ""
    return tile_ids(main)


@pytest.mark.lite
def test_browse_pages_through_the_store_and_thumbnails_come_from_the_files(page, world):
    first = page.get("/")
    assert first.status_code == 200
    ids = grid_ids(first.text)
    assert len(ids) == 100 and ids == sorted(ids)
    nxt = re.search(r'href="(/\?after=\d+)"', first.text).group(1)
    rest = grid_ids(page.get(nxt).text)
    assert len(rest) == 100 and not set(rest) & set(ids)
    last = grid_ids(page.get(re.search(r'href="(/\?after=\d+)"', page.get(nxt).text).group(1)).text)
    assert len(ids) + len(rest) + len(last) == len(world["ids"])  # 200 + the markup-named + the link
    t = page.get(f"/thumb/{ids[0]}")
    assert t.status_code == 200 and t.headers["content-type"] == "image/jpeg"
    im = Image.open(io.BytesIO(t.content))
    assert max(im.size) == 160
    assert page.get(f"/thumb/{ids[0]}").content == t.content  # cached


@pytest.mark.lite
def test_more_like_these_equals_the_clients_merged_search(page, world):
    ids = [world["ids"][k] for k in sorted(world["ids"]) if k.startswith("digits/7/")][:3]
    r = page.post("/similar", data={"csrf": page.csrf, "id": ids})
    assert r.status_code == 303
    got = page.get(r.headers["location"])
    assert got.status_code == 200 and "Nearest to 3 pictures" in got.text
    want = page.hash_client.similar(ids=ids, k=100, merge="min")
    shown = grid_ids(got.text)
    assert shown == want.ids[0].tolist()[:len(shown)] and len(shown) == 100
    dists = [int(v) for v in re.findall(r'title="Hamming distance">d (\d+)<', got.text.split('id="results"')[-1])]
    assert dists == want.distances[0].tolist()[:100]


@pytest.mark.lite
def test_the_category_loop_through_the_page(page, world):
    sevens = [world["ids"][k] for k in sorted(world["ids"]) if k.startswith("digits/7/")][:5]
    r = page.post("/define", data={"csrf": page.csrf, "id": sevens, "name": "sevens"})
    assert r.status_code == 303 and r.headers["location"] == "/category/sevens"
    members = page.get("/category/sevens")
    assert members.status_code == 200
    shown = grid_ids(members.text)
    want = page.hash_client.members("sevens", k=100)
    assert shown == want.ids.tolist()
    probs = [float(v) for v in re.findall(r'title="probability of membership">([0-9.]+)<', members.text)]
    assert probs == [round(float(p), 2) for p in want.probabilities] and probs == sorted(probs, reverse=True)
    assert set(sevens) & set(shown) and all(f'data-id="{i}"' in members.text for i in sevens if i in shown)
    # mark 3 non-examples wrong, one at a time, as a person clicks
    wrong = [i for i in shown if i not in sevens][:3]
    for i in wrong:
        r = page.post("/category/sevens/mark", data={"csrf": page.csrf, "id": i, "verdict": "wrong",
                                                     "back": "/category/sevens"})
        assert r.status_code == 303 and r.headers["location"] == "/category/sevens"
        after = page.get("/category/sevens")
        assert i not in grid_ids(after.text)
    d = page.hash_client.describe("sevens")
    assert d["negatives"] == 3 and len(d["rounds"]) == 3
    section = after.text.split("Marked wrong", 1)[1]
    assert set(tile_ids(section)) == set(wrong)
    # one marked right, then the new-only view leaves it and the examples out
    right = [i for i in grid_ids(after.text) if i not in sevens][0]
    page.post("/category/sevens/mark", data={"csrf": page.csrf, "id": right, "verdict": "right"})
    new = grid_ids(page.get("/category/sevens?new_only=1").text)
    assert not set(new) & (set(sevens) | {right} | set(wrong))
    # undo a wrong mark
    page.post("/category/sevens/mark", data={"csrf": page.csrf, "id": wrong[0], "verdict": "forget"})
    assert page.hash_client.describe("sevens")["negatives"] == 2
    # listed, then dropped
    listed = page.get("/categories")
    assert 'href="/category/sevens"' in listed.text
    assert page.post("/category/sevens/drop", data={"csrf": page.csrf}).status_code == 303
    assert "sevens" not in page.hash_client.categories()
    gone = page.get("/category/sevens")
    assert gone.status_code == 404 and "sevens" in gone.text


@pytest.mark.lite
def test_names_are_shown_as_text(page, world):
    evil = world["ids"][f"digits/3/{EVIL}"]
    html = page.get(f"/similar?id={evil}").text
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in html
    assert "<img src=x onerror" not in html
    # and in the contact sheet
    out = world["root"].parent / "evil.html"
    res = CliRunner().invoke(cli, ["search", "--collection", "c", "--uri", world["db"], "--id", str(evil), "-k", "3",
                                   "--html", str(out)])
    assert res.exit_code == 0, res.output
    assert "<img src=x onerror" not in out.read_text() and "&lt;img src=x onerror=alert(1)&gt;.png" in out.read_text()


@pytest.mark.lite
def test_files_only_from_the_ingested_folders(page, world, tmp_path):
    link = world["ids"]["digits/4/link-out.png"]
    r = page.get(f"/thumb/{link}")
    assert r.status_code == 403 and "outside the folders" in r.headers["x-refused"]
    assert r.headers["content-type"].startswith("image/svg")
    # rows that point outside their root: an absolute path elsewhere, a '..'
    spec = page.hash_client.store.describe_collection("c").encoder
    code = page.hash_client.store.get("c", ids=[link]).codes
    root = str(world["root"])
    rows = {1: {"origin": "/etc/passwd", "root": root},
            2: {"origin": f"{root}/../secret.png", "root": root},
            3: {"origin": str(world["outside"])}}  # no root recorded
    page.hash_client.store.upsert("c", ids=list(rows), codes=np.repeat(code, 3, 0), encoder=spec,
                                  metadata=list(rows.values()))
    try:
        for i in rows:
            assert page.get(f"/thumb/{i}").status_code == 403, rows[i]
        for path in ("/thumb/../../etc/passwd", "/static/../app.py", "/static/%2e%2e/app.py", "/thumb/-1",
                     "/thumb/x"):
            r = page.get(path)
            assert r.status_code in (403, 404) and b"root:" not in r.content and b"create_app" not in r.content, path
        assert page.get("/static/style.css").status_code == 200
    finally:
        page.hash_client.store.delete("c", ids=list(rows))


@pytest.mark.lite
def test_state_changes_need_post_the_pages_csrf_value_and_the_same_origin(page, world):
    ids = [world["ids"][k] for k in sorted(world["ids"])][:5]
    assert page.get("/define").status_code == 405
    r = page.post("/define", data={"id": ids, "name": "x"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = page.post("/define", data={"id": ids, "name": "x", "csrf": page.csrf}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "another site" in r.text
    assert page.hash_client.categories() == []
    r = page.post("/define", data={"id": ids, "name": "", "csrf": page.csrf})
    assert r.status_code == 400 and "name: expected a name" in r.text


@pytest.mark.lite
def test_uploads_are_limited_and_must_be_pictures(page, world):
    png = next((world["root"] / "5").glob("*.png"))
    r = page.post("/search", data={"csrf": page.csrf}, files={"picture": (png.name, png.read_bytes(), "image/png")})
    assert r.status_code == 200
    assert grid_ids(r.text)[0] == world["ids"][f"digits/5/{png.name}"] and ">d 0<" in r.text
    r = page.post("/search", data={"csrf": page.csrf}, files={"picture": ("notes.txt", b"not a picture", "text/plain")})
    assert r.status_code == 400 and "picture: expected an image file" in r.text and "notes.txt" in r.text
    big = b"\0" * (11 * 1024 * 1024)
    r = page.post("/search", data={"csrf": page.csrf}, files={"picture": ("big.png", big, "image/png")})
    assert r.status_code == 413 and "at most 10 MiB" in r.text


@pytest.mark.lite
def test_the_token_guards_every_request(world):
    from starlette.testclient import TestClient

    from ingestion.web.app import create_app

    with HashClient(world["db"], collection="c") as client:
        with TestClient(create_app(client, token="s3cret-token"), follow_redirects=False) as http:
            assert http.get("/").status_code == 401
            assert http.get("/thumb/1").status_code == 401
            assert http.get("/?token=wrong").status_code == 401
            r = http.get("/?token=s3cret-token")
            assert r.status_code == 303 and r.headers["location"] == "/" and "s3cret-token" not in r.headers["location"]
            assert http.get("/").status_code == 200  # the cookie
            http.cookies.clear()
            assert http.get("/", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
            assert http.get("/").status_code == 401
    # another host than 127.0.0.1 needs a token; a token is never printed
    res = CliRunner().invoke(cli, ["serve", "--collection", "c", "--uri", world["db"], "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "--page-token" in res.output


@pytest.mark.server
def test_a_milvus_that_stops_answering_is_a_message_and_the_server_keeps_running(world, tmp_path):
    from starlette.testclient import TestClient

    from ingestion.web.app import create_app
    from milvus_hash.store.local_server import LocalMilvusServer

    with HashStore(world["db"]) as lite:
        rec = next(lite.iter_records("c"))
        spec = lite.describe_collection("c").encoder
    server = LocalMilvusServer(tmp_path / "milvus", stop_grace=5).start()
    try:
        with HashStore(server.uri, timeout=30) as setup:  # a fresh server loads a new collection in 1-5 s
            setup.create_collection("c", encoder=spec)
            setup.upsert("c", ids=rec.ids, codes=rec.codes, encoder=spec, sources=rec.sources, metadata=rec.metadata)
            HashClient(collection="c", store=setup)  # creates and loads the definitions collection
        store = HashStore(server.uri, timeout=3)  # the page's: a stopped Milvus is told within 3 s
        client = HashClient(collection="c", store=store)
        with TestClient(create_app(client), follow_redirects=False) as http:
            assert http.get("/").status_code == 200
            server.stop()  # Milvus goes away under the page
            r = http.get("/")
            assert r.status_code == 503 and "is not answering" in r.text and "reload" in r.text, r.text[-800:]
            assert http.get("/static/style.css").status_code == 200  # the page's server still runs
            assert http.get("/categories").status_code == 503
    finally:
        server.stop()


@pytest.mark.lite
def test_contact_sheets_from_the_command_line(world, tmp_path):
    runner = CliRunner()
    base = ["--collection", "c", "--uri", world["db"]]
    sevens = [world["ids"][k] for k in sorted(world["ids"]) if k.startswith("digits/7/")][:5]
    assert runner.invoke(cli, ["category", "define", "s", "--ids", ",".join(map(str, sevens)), *base]).exit_code == 0
    try:
        out = tmp_path / "members.html"
        res = runner.invoke(cli, ["category", "members", "s", "-k", "30", "--html", str(out), "--json", *base])
        assert res.exit_code == 0, res.output
        rows = [json.loads(line) for line in res.output.splitlines() if line.startswith("{")]
        html = out.read_text()
        assert html.count('<img src="data:image/jpeg;base64,') == 30 == len(rows)
        assert [int(v) for v in re.findall(r"id (\d+)</span>", html)] == [r["id"] for r in rows]
        assert html.count("example</span>") == sum(r["example"] for r in rows)
        out2 = tmp_path / "hits.html"
        res = runner.invoke(cli, ["search", *base, "--id", str(sevens[0]), "--id", str(sevens[1]), "-k", "12",
                                  "--html", str(out2)])
        assert res.exit_code == 0, res.output
        assert out2.read_text().count("data:image/jpeg;base64,") == 12 + 2  # the hits and the two queries
    finally:
        with HashStore(world["db"]) as store:
            HashClient(collection="c", store=store).drop("s")
