"""The thin layer between the store and pymilvus: URIs, connections, error translation.

Kept apart from :mod:`.hash_store` so the store reads as what it does, and so that the one
place that knows pymilvus's exception zoo and its ORM-versus-MilvusClient split is small.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
import warnings
from typing import Iterator

from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from ..errors import (
    CollectionNotFoundError,
    FileHeldError,
    InvalidInputError,
    MilvusHashError,
    MilvusServerError,
    MilvusUnavailableError,
)
from . import lite
from .uri import DEFAULT_URI, REMOTE_SCHEMES, Target, resolve_uri, split_credentials  # noqa: F401 (re-exported)

# pymilvus logs every failed call with its traceback, and sets its loggers' levels when it is first
# imported (so a level set before that import is lost). A program that reports each failure itself
# (the command line: one line and its exit code) asks for quiet with MILVUS_HASH_QUIET_PYMILVUS=1.
if os.environ.get("MILVUS_HASH_QUIET_PYMILVUS") == "1":
    # its modules' own loggers too: pymilvus 2.5.0's MilvusClient sets DEBUG on its module logger,
    # which then logs "Failed to query collection" whatever the package logger's level
    for _name in ["pymilvus", *(n for n in list(logging.root.manager.loggerDict) if n.startswith("pymilvus."))]:
        logging.getLogger(_name).setLevel(logging.CRITICAL)

try:  # the column-wise insert path (2-3x faster than rows); pymilvus announces its removal in 3.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pymilvus import Collection as _OrmCollection
        from pymilvus import connections as _orm_connections
except ImportError:  # pragma: no cover - exercised only on a pymilvus without the ORM
    _OrmCollection = None
    _orm_connections = None

# Milvus status codes that mean "try again later" (rate limited, not ready, timeout).
_RETRYABLE_CODES = {8, 9, 10, 11, 52, 53, 54, 2000}
_UNAVAILABLE_MARKERS = ("fail connecting", "unavailable", "deadline", "connection refused",
                        "connect failed", "timeout", "timed out", "socket closed", "channel")
# Server states a retry outlives: a collection not yet loaded again after a restart, a node not ready.
_RETRYABLE_MARKERS = ("rate limit", "not loaded", "not ready", "not healthy", "is stopping", "insufficient memory")


def _is_unavailable(message: str) -> bool:
    low = message.lower()
    return any(marker in low for marker in _UNAVAILABLE_MARKERS)


def lite_start_error(where: str, target: Target) -> MilvusHashError:
    """The error of a Milvus Lite start that failed, from why it failed (:func:`.lite.start_failure`)."""
    why = lite.start_failure(target.uri)
    if why is None or why.reason == "held":
        who = "" if why is None or why.pid is None else \
            f" (PID {why.pid}{': ' + why.command[:120] if why.command else ''})"
        return FileHeldError(f"{where}: held by another program{who}; Milvus Lite serves one program a file at a "
                             "time: a retry may help once it has finished (or use a Milvus server for "
                             "several writers)", pid=None if why is None else why.pid)
    if why.reason == "unwritable":
        return InvalidInputError(f"uri: expected a Milvus Lite file in a folder that can be written, received "
                                 f"{target.uri!r} ({why.detail})")
    return MilvusServerError(f"{where}: Milvus Lite's server exited at once (exit code {why.exit_code}); "
                             "the file may be damaged or from another Milvus Lite version (its log: "
                             f"{lite.server_log()})", retryable=False)


@contextlib.contextmanager
def translate_errors(action: str, target: Target, collection: str | None = None) -> Iterator[None]:
    """Turn pymilvus and gRPC failures into the typed errors of :mod:`milvus_hash.errors`."""
    where = f"{action} on {target}" + (f", collection {collection!r}" if collection else "")
    try:
        yield
    except MilvusHashError:
        raise
    except MilvusException as exc:
        code = getattr(exc, "code", None)
        message = str(getattr(exc, "message", "") or exc)
        low = message.lower()
        if collection and (code == 100 or "collection not found" in low or "can't find collection" in low):
            raise CollectionNotFoundError(f"{where}: no such collection") from exc
        if target.embedded and "open local milvus failed" in low:
            raise lite_start_error(where, target) from exc
        if type(exc).__name__ == "MilvusUnavailableException" or _is_unavailable(message):
            raise MilvusUnavailableError(f"{where}: Milvus did not answer ({message}); a retry may help") from exc
        if type(exc).__name__ == "ParamError":
            raise InvalidInputError(f"{where}: {message}") from exc
        retryable = code in _RETRYABLE_CODES or any(marker in low for marker in _RETRYABLE_MARKERS)
        raise MilvusServerError(f"{where}: {message}", retryable=retryable, code=code) from exc
    except (ConnectionError, TimeoutError) as exc:
        raise MilvusUnavailableError(f"{where}: {exc}; a retry may help") from exc
    except Exception as exc:  # grpc.RpcError and friends, without importing grpc's internals
        if type(exc).__module__.startswith("grpc") and _is_unavailable(f"{exc}"):
            raise MilvusUnavailableError(f"{where}: {exc}; a retry may help") from exc
        raise


_alias_counter = itertools.count()


class Connection:
    """A MilvusClient plus, where pymilvus still has it, an ORM alias for column-wise writes."""

    def __init__(self, target: Target, *, timeout: float, **client_kwargs):
        self.target = target
        self.timeout = timeout
        if target.embedded:
            lite.install()
            lite.await_prestart(target.uri)
            # pymilvus pings every 10 s even between calls; the embedded server allows one ping per
            # 5 minutes without data and answers with GOAWAY "too_many_pings" (printed by gRPC on
            # stderr during a long extraction). A local socket needs no keepalive between calls.
            client_kwargs = {**client_kwargs, "grpc_options": {"grpc.keepalive_permit_without_calls": False,
                                                               "grpc.keepalive_time_ms": 300_000,
                                                               **client_kwargs.get("grpc_options", {})}}
        self._client_kwargs = client_kwargs
        self.client = self._retry_embedded(lambda: MilvusClient(uri=target.uri, timeout=timeout, **client_kwargs))
        self._alias: str | None = None
        self._orm: dict[str, object] = {}

    def _retry_embedded(self, connect):
        """Connect. On Milvus Lite a file held by another program is refused at once
        (:class:`FileHeldError`), never opened twice; only a hold that is about to go is waited for,
        a few seconds: the server of a program that has just ended (it exits once it sees its
        program's lock go, and holds the lock for that moment)."""
        deadline = time.monotonic() + (min(self.timeout, 5.0) if self.target.embedded else 0.0)
        delay = 0.1
        while True:
            try:
                with translate_errors("connect", self.target):
                    return connect()
            except FileHeldError:
                why = lite.start_failure(self.target.uri)
                if why is None or not why.by_lite or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(2 * delay, 1.0)

    def orm_collection(self, name: str):
        """The ORM ``Collection`` for column inserts, or None where pymilvus has no ORM."""
        if _OrmCollection is None:
            return None
        if name not in self._orm:
            alias = self.orm_alias()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._orm[name] = _OrmCollection(name, using=alias)
        return self._orm[name]

    def orm_alias(self) -> str | None:
        """The ORM connection's alias (connected on first use), or None where pymilvus has no ORM."""
        if _orm_connections is None:
            return None
        if self._alias is None:
            alias = f"milvus-hash-{os.getpid()}-{next(_alias_counter)}"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._retry_embedded(lambda: _orm_connections.connect(
                    alias=alias, uri=self.target.uri, timeout=self.timeout, **self._client_kwargs))
            self._alias = alias
        return self._alias

    def forget(self, name: str) -> None:
        self._orm.pop(name, None)

    def close(self) -> None:
        self._orm.clear()
        if self._alias is not None and _orm_connections is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with contextlib.suppress(Exception):
                    _orm_connections.disconnect(self._alias)
            self._alias = None
        with contextlib.suppress(Exception):
            self.client.close()
