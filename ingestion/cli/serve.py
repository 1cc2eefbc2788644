"""``milvus-hash serve``: the store's pictures, the plain search and the category loop in a browser."""

from __future__ import annotations

import ipaddress
import socket

import click

from .options import milvus_options

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@milvus_options(existing=True)
@click.option("--collection", required=True, help="The collection of UGH library codes to show.")
@click.option("--library", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The collection's library file: enables search by an uploaded picture.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Another than 127.0.0.1 needs --page-token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--page-token", envvar="MILVUS_HASH_PAGE_TOKEN", default=None,
              help="A secret every request must carry (open the page once as /?token=SECRET) "
                   "[env: MILVUS_HASH_PAGE_TOKEN]. Needed with a --host other than 127.0.0.1.")
@click.option("--root", "roots", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A folder whose pictures may be shown besides those the rows record (for collections "
                   "ingested before milvus-hash recorded source folders); repeatable.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where thumbnails are kept between runs [default: ~/.cache/milvus-hash/thumbnails].")
def serve(store, collection, library, host, port, page_token, roots, cache_dir):
    """A local web page over the collection: browse the pictures, search by one or several
    (More like these), define a category from a selection, mark its members right or wrong
    and watch it learn, list and drop categories.

    \b
    Examples:
      milvus-hash serve --collection demo --uri milvus_hash.db
      milvus-hash serve --collection photos --library lib.npz --port 9000
      MILVUS_HASH_PAGE_TOKEN=s3cret milvus-hash serve --collection photos --host 0.0.0.0
    """
    import os
    from pathlib import Path

    import uvicorn

    from milvus_hash import HashClient

    from ..web.app import create_app
    from ..web.files import Files

    if not _is_loopback(host) and not page_token:
        raise click.UsageError(f"--page-token: expected a secret to serve on {host!r}, an address other than "
                               "127.0.0.1, received none (or set MILVUS_HASH_PAGE_TOKEN)")
    client = HashClient(collection=collection, library=library, store=store)
    store.describe_collection(collection)  # an unknown collection is an error now, not on the page
    cache = Path(cache_dir) if cache_dir else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) \
        / "milvus-hash" / "thumbnails"
    app = create_app(client, files=Files(roots, cache_dir=cache), token=page_token)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise click.UsageError(f"--port: expected a free port on {host}, received {port} ({exc.strerror})") from None
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"milvus-hash: {collection} ({store.count(collection):,} pictures in {store.target}) at "
               f"http://{shown}:{sock.getsockname()[1]}/{'?token=<your page token>' if page_token else ''}  "
               "(Ctrl-C stops)", err=True)
    # no access log: a first request carries the page token in its address
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
