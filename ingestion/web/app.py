"""The page behind ``milvus-hash serve``: the store as thumbnails, the plain search from one or
several pictures, and the category loop (define from a selection, look, mark right or wrong, refine).

Every answer comes from :class:`~milvus_hash.HashClient` (``similar``, ``define``, ``members``,
``refine``, ``drop``): the page holds no retrieval logic of its own. Pages are rendered on the
server (Jinja2, autoescaped) and work without JavaScript; thumbnails load on their own requests, so
a page never waits for a picture.

Safety: a token (when given) is checked on every request; state-changing requests are POST and
carry the page's CSRF value, and a request from another origin is refused; pictures are served by
item id only, from inside the folders they were ingested from (:mod:`.files`); uploads are limited
in size and must decode as images; a Milvus that does not answer is a message on the page, and the
server keeps running.
"""

from __future__ import annotations

import hmac
import os
import secrets
import tempfile
import threading
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import numpy as np

from milvus_hash.errors import CollectionNotFoundError, MilvusHashError

from .files import FileRefused, Files, origin_of

HERE = Path(__file__).parent
#: Thumbnails a page shows.
PAGE_SIZE = 100
#: Largest upload accepted, in bytes.
MAX_UPLOAD = 10 * 1024 * 1024
#: Most results a grid pages through.
MAX_RESULTS = 5000
TOKEN_COOKIE = "milvus_hash_token"

_PLACEHOLDER = (b'<svg xmlns="http://www.w3.org/2000/svg" width="160" height="160"><rect width="160" height="160" '
                b'fill="#eee"/><text x="80" y="84" font-family="sans-serif" font-size="13" fill="#888" '
                b'text-anchor="middle">no picture</text></svg>')


class PageError(Exception):
    """A message for the page, with its HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def create_app(client, *, files: Files | None = None, token: str | None = None, page_size: int = PAGE_SIZE,
               max_upload: int = MAX_UPLOAD):
    """The Starlette application over ``client`` (a :class:`~milvus_hash.HashClient`).

    ``token``: when given, every request must carry it (``Authorization: Bearer``, the cookie set
    by opening the page once with ``?token=``); ``files``: the allowed roots and the thumbnail cache.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
    from starlette.templating import Jinja2Templates

    files = files or Files()
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.autoescape = True
    csrf_value = secrets.token_urlsafe(32)
    lock = threading.Lock()  # one Milvus call at a time: a page for one person
    origins: dict[int, object] = {}  # id -> Origin, filled as grids are shown

    def placeholder(status: int, **headers):
        """The grey "no picture" tile, for an item whose picture cannot be shown."""
        return Response(_PLACEHOLDER, status_code=status, media_type="image/svg+xml", headers=headers or None)

    def locked(fn, *args, **kwargs):
        with lock:
            return fn(*args, **kwargs)

    async def call(fn, *args, **kwargs):
        """A client call in a worker thread (the page never blocks the thumbnails' requests)."""
        return await run_in_threadpool(locked, fn, *args, **kwargs)

    async def count() -> int | None:
        try:
            return await call(client.store.count, client.collection)
        except MilvusHashError:
            return None

    def render(request, template: str, status: int = 200, **context):
        context.setdefault("message", None)
        return templates.TemplateResponse(request, template, {
            "collection": client.collection, "csrf": csrf_value, "can_upload": client.library is not None,
            "uri": client.store.target, **context}, status_code=status)

    async def tiles(ids, *, probabilities=None, examples=None, distances=None) -> list[dict]:
        """The rows of a grid: each id with its name, label and picture's origin (one Milvus query)."""
        ids = np.asarray(ids, np.int64)
        if not len(ids):
            return []
        rec = await call(client.store.get, client.collection, ids=ids, with_codes=False)
        by_id = {int(i): (s, lab, meta) for i, s, lab, meta in zip(rec.ids.tolist(), rec.sources, rec.labels,
                                                                   rec.metadata)}
        out = []
        for r, i in enumerate(ids.tolist()):
            source, label, meta = by_id.get(i, ("", None, {}))
            o = origin_of(meta)
            if o is not None:
                origins[i] = o
            out.append({"id": i, "name": source.rsplit("/", 1)[-1] or str(i), "source": source, "label": label,
                        "probability": None if probabilities is None else float(probabilities[r]),
                        "example": bool(examples[r]) if examples is not None else False,
                        "distance": None if distances is None else int(distances[r])})
        return out

    def page_of(request) -> int:
        try:
            page = int(request.query_params.get("page", "0"))
        except ValueError:
            raise PageError(400, f"page: expected a whole number, received {request.query_params.get('page')!r}")
        if page < 0 or (page + 1) * page_size > MAX_RESULTS:
            raise PageError(400, f"page: expected 0 to {MAX_RESULTS // page_size - 1}, received {page}")
        return page

    def ids_of(values, argument: str = "id") -> list[int]:
        out = []
        for v in values:
            try:
                out.append(int(v))
            except (TypeError, ValueError):
                raise PageError(400, f"{argument}: expected item ids (whole numbers), received {v!r}") from None
        return out

    async def checked_form(request, *, max_files: int = 0):
        """The POSTed form after the CSRF checks: same origin, the page's value."""
        origin = request.headers.get("origin") or request.headers.get("referer")
        if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
            raise PageError(403, "request refused: it came from another site (cross-site request)")
        try:
            form = await request.form(max_files=max_files, max_fields=PAGE_SIZE * 20, max_part_size=max_upload)
        except HTTPException as exc:
            raise PageError(413 if "size" in str(exc.detail).lower() else 400,
                            f"form: expected at most {max_upload // (1024 * 1024)} MiB and {max_files} file(s); "
                            f"{exc.detail}") from None
        if not hmac.compare_digest(str(form.get("csrf", "")), csrf_value):
            raise PageError(403, "request refused: the form's CSRF value is missing or stale (reload the page)")
        return form

    # ------------------------------------------------------------------ pages
    async def browse(request):
        page_after = request.query_params.get("after", "")
        after = ids_of([page_after], "after")[0] if page_after else None
        def first_page():
            for rec in client.store.iter_records(client.collection, batch_size=page_size, with_codes=False,
                                                 filter="" if after is None else f"id > {after}"):
                return rec.ids[:page_size]
            return np.zeros(0, np.int64)

        ids = await call(first_page)
        items = await tiles(ids)
        nxt = f"/?after={int(ids[-1])}" if len(ids) == page_size else None
        return render(request, "grid.html", title="Browse", items=items, total=await count(), next_url=nxt,
                      heading=f"All pictures{' (continued)' if after is not None else ''}", mode="browse")

    async def similar_get(request):
        ids = ids_of(request.query_params.getlist("id"))
        if not ids:
            raise PageError(400, "id: expected at least one picture to search from (select some, then More like these)")
        page = page_of(request)
        k = min((page + 1) * page_size, MAX_RESULTS)
        res = await call(client.similar, ids=ids, k=k, merge="min", output_fields=())
        got_ids, dist = res.ids[0], res.distances[0]
        start = page * page_size
        items = await tiles(got_ids[start:start + page_size], distances=dist[start:start + page_size],
                      examples=np.isin(got_ids[start:start + page_size], ids))
        query = urlencode([("id", i) for i in ids])
        nxt = f"/similar?{query}&page={page + 1}" if len(got_ids) == k and k < MAX_RESULTS else None
        return render(request, "grid.html", title="More like these", items=items, next_url=nxt, query_ids=ids,
                      queries=await tiles(ids), heading=f"Nearest to {len(ids)} picture{'s' * (len(ids) > 1)} "
                      "(smallest Hamming distance to any of them)", mode="similar", total=await count())

    async def similar_post(request):
        form = await checked_form(request)
        ids = ids_of(form.getlist("id"))
        if not ids:
            raise PageError(400, "id: expected at least one selected picture, received none (tick some first)")
        return RedirectResponse("/similar?" + urlencode([("id", i) for i in ids]), status_code=303)

    async def upload(request):
        if client.library is None:
            raise PageError(400, "search by picture needs the collection's library: restart with "
                                 "`milvus-hash serve --library LIB.npz`")
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_upload + 64 * 1024:
            raise PageError(413, f"picture: expected at most {max_upload // (1024 * 1024)} MiB, received "
                                 f"{int(length) / 1024 / 1024:.1f} MiB")
        form = await checked_form(request, max_files=1)
        picture = form.get("picture")
        if picture is None or not hasattr(picture, "read"):
            raise PageError(400, "picture: expected an image file to search with, received none")
        data = await picture.read()
        name = picture.filename or "upload"
        if not data:
            raise PageError(400, f"picture: expected an image file, received an empty file ({name!r})")
        from PIL import Image, UnidentifiedImageError
        import io

        try:
            with Image.open(io.BytesIO(data)) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            raise PageError(400, f"picture: expected an image file (PNG, JPEG, WebP, ...), received {name!r}, "
                                 "which is not one") from None
        fd, tmp = tempfile.mkstemp(suffix=Path(name).suffix[:10] or ".img", prefix="milvus-hash-upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            res = await call(client.similar, images=[tmp], k=page_size, output_fields=())
        finally:
            os.unlink(tmp)
        items = await tiles(res.ids[0], distances=res.distances[0])
        return render(request, "grid.html", title="Search by picture", items=items, total=await count(), mode="similar",
                      heading=f"Nearest to the uploaded picture {name}")

    async def define(request):
        form = await checked_form(request)
        ids = ids_of(form.getlist("id"))
        name = str(form.get("name", "")).strip()
        if not ids:
            raise PageError(400, "id: expected the selected pictures of the category, received none (tick some first)")
        if not name:
            raise PageError(400, "name: expected a name for the category, received none")
        if name in await call(client.categories):
            raise PageError(409, f"name: {name!r} is a category already: choose another name, or open it "
                                 "and mark its members")
        await call(client.define, name, ids=ids)
        return RedirectResponse(f"/category/{quote(name, safe='')}", status_code=303)

    async def categories(request):
        rows = []
        for name in await call(client.categories):
            try:
                rows.append(await call(client.describe, name))
            except MilvusHashError as exc:
                if exc.retryable:
                    raise
                rows.append({"name": name, "error": str(exc)})
        return render(request, "categories.html", title="Categories", rows=rows, total=await count())

    async def members(request):
        name = request.path_params["name"]
        new_only = request.query_params.get("new_only") in ("1", "true", "on")
        page = page_of(request)
        k = min((page + 1) * page_size, MAX_RESULTS)
        try:
            got = await call(client.members, name, k=k, new_only=new_only)
            info = await call(client.describe, name)
            cat = await call(client.category, name)
        except CollectionNotFoundError:
            raise
        except MilvusHashError as exc:
            if exc.retryable:
                raise
            raise PageError(404, str(exc)) from None
        start = page * page_size
        items = await tiles(got.ids[start:start + page_size], probabilities=got.probabilities[start:start + page_size],
                      examples=got.examples[start:start + page_size] if got.examples is not None else None)
        _, neg = cat.marked_ids()
        wrong = await tiles(neg[neg >= 0][-page_size:][::-1])
        base = f"/category/{quote(name, safe='')}" + ("?new_only=1" if new_only else "")
        nxt = (base + ("&" if new_only else "?") + f"page={page + 1}") if len(got) == k and k < MAX_RESULTS else None
        back = base + (("&" if new_only else "?") + f"page={page}" if page else "")
        return render(request, "members.html", title=f"Category {name}", name=name, info=info, items=items,
                      wrong=wrong, new_only=new_only, next_url=nxt, back=back, total=await count(), mode="members",
                      scored=got.candidates)

    async def mark(request):
        name = request.path_params["name"]
        form = await checked_form(request)
        ids = ids_of(form.getlist("id"))
        verdict = str(form.get("verdict", ""))
        if not ids:
            raise PageError(400, "id: expected the picture to mark, received none")
        kw = {"right": "positive_ids", "wrong": "negative_ids", "forget": "forget_ids"}.get(verdict)
        if kw is None:
            raise PageError(400, f"verdict: expected 'right', 'wrong' or 'forget', received {verdict!r}")
        await call(client.refine, name, **{kw: ids})
        back = str(form.get("back", ""))
        if not back.startswith(f"/category/{quote(name, safe='')}") or "//" in back or "\\" in back:
            back = f"/category/{quote(name, safe='')}"
        return RedirectResponse(back, status_code=303)

    async def drop(request):
        name = request.path_params["name"]
        await checked_form(request)
        await call(client.drop, name)
        return RedirectResponse("/categories", status_code=303)

    async def thumb(request):
        try:
            item = int(request.path_params["id"])
        except ValueError:
            return placeholder(404)
        o = origins.get(item)
        if o is None:
            try:
                rec = await call(client.store.get, client.collection, ids=[item], with_codes=False)
            except MilvusHashError as exc:
                if exc.retryable:
                    raise
                return placeholder(404)
            o = origin_of(rec.metadata[0]) if len(rec) else None
            if o is not None:
                origins[item] = o
        if o is None:
            return placeholder(404)
        try:
            data = await run_in_threadpool(files.thumbnail, o)
        except FileRefused as exc:
            return placeholder(403, **{"X-Refused": str(exc)[:200]})
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    # ------------------------------------------------------------------ errors and the token
    async def page_error(request, exc: PageError):
        return render(request, "message.html", status=exc.status, title="Error", message=exc.message)

    async def milvus_error(request, exc: MilvusHashError):
        if exc.retryable:
            return render(request, "message.html", status=503, title="Milvus is not answering",
                          message=f"Milvus at {client.store.target} is not answering ({exc}). The page keeps "
                                  "running: reload it when Milvus is back.")
        return render(request, "message.html", status=400, title="Error", message=str(exc))

    async def not_found(request, exc):
        if request.url.path.startswith("/thumb/"):
            return placeholder(404)
        return render(request, "message.html", status=exc.status_code, title="Not here",
                      message=f"{request.url.path}: {exc.detail}")

    class TokenCheck(BaseHTTPMiddleware):
        async def dispatch(self, request, call_next):
            if token is None:
                return await call_next(request)
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given, token):
                # remember it in a cookie and take it out of the address bar (and of the history)
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                resp = RedirectResponse(request.url.path + ("?" + urlencode(rest) if rest else ""), status_code=303)
                resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
                return resp
            auth = request.headers.get("authorization", "")
            bearer = auth[7:] if auth.lower().startswith("bearer ") else ""
            cookie = request.cookies.get(TOKEN_COOKIE, "")
            if (bearer and hmac.compare_digest(bearer, token)) or (cookie and hmac.compare_digest(cookie, token)):
                return await call_next(request)
            return PlainTextResponse("401: this page needs its token: open it as http://HOST:PORT/?token=TOKEN "
                                     "(the token given to milvus-hash serve), or send Authorization: Bearer TOKEN",
                                     status_code=401)

    routes = [
        Route("/", browse),
        Route("/similar", similar_get, methods=["GET"]),
        Route("/similar", similar_post, methods=["POST"]),
        Route("/search", upload, methods=["POST"]),
        Route("/define", define, methods=["POST"]),
        Route("/categories", categories),
        Route("/category/{name}", members),
        Route("/category/{name}/mark", mark, methods=["POST"]),
        Route("/category/{name}/drop", drop, methods=["POST"]),
        Route("/thumb/{id}", thumb),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(TokenCheck)],
                    exception_handlers={PageError: page_error, MilvusHashError: milvus_error, 404: not_found,
                                        405: not_found})
    app.state.client, app.state.files, app.state.csrf = client, files, csrf_value
    return app


__all__ = ["MAX_UPLOAD", "PAGE_SIZE", "PageError", "create_app"]
