"""Where a store points, without importing pymilvus: the default Milvus Lite file, a URI checked
and resolved (:func:`resolve_uri`), credentials inside a URI kept apart (:func:`split_credentials`).
Light, so the command line can show its defaults and check a URI before pymilvus loads."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import expected

DEFAULT_URI = "./milvus_hash.db"
REMOTE_SCHEMES = ("http://", "https://", "tcp://", "grpc://", "unix:")


@dataclass(frozen=True)
class Target:
    """Where a store points: ``uri`` as pymilvus takes it and whether it is embedded Milvus Lite.
    ``credentials`` (``user:password`` given inside the URI) are kept apart: never in ``uri``, in
    ``str()`` or in ``repr()``, so no message or log line shows them."""

    uri: str
    embedded: bool
    credentials: str | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return f"Milvus Lite at {self.uri}" if self.embedded else f"Milvus at {self.uri}"


def split_credentials(uri: str) -> tuple[str, str | None]:
    """``http://user:password@host:19530`` -> (``http://host:19530``, ``user:password``); a URI
    without credentials is returned as it is, with None."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri, None
    netloc, slash, path = rest.partition("/")
    if "@" not in netloc:
        return uri, None
    userinfo, _, host = netloc.rpartition("@")
    from urllib.parse import unquote

    return f"{scheme}://{host}{slash}{path}", unquote(userinfo) or None


def resolve_uri(uri: object) -> Target:
    """Check a URI: a server address (``http://host:19530``) or a local Milvus Lite ``.db`` file."""
    if not isinstance(uri, (str, os.PathLike)):
        raise expected("uri", "a server URI like http://localhost:19530 or a local path ending in .db",
                       type(uri).__name__)
    text = os.fspath(uri).strip()
    if not text:
        raise expected("uri", "a server URI or a local .db path", "an empty string")
    text, credentials = split_credentials(text)
    if text.startswith(REMOTE_SCHEMES):
        return Target(text, embedded=False, credentials=credentials)
    if "://" in text:
        raise expected("uri", f"a scheme among {', '.join(REMOTE_SCHEMES)} or a local .db path", repr(text))
    path = Path(text).expanduser()
    if path.suffix != ".db":
        raise expected("uri", "a Milvus Lite file whose name ends in .db (e.g. ./milvus_hash.db)", repr(text))
    if path.exists() and path.is_dir():
        raise expected("uri", "a Milvus Lite file, not a directory", repr(text))
    from .lite import check_database_file

    check_database_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Target(str(path.resolve()), embedded=True)
