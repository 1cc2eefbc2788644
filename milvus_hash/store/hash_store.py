"""HashStore: packed binary codes in Milvus ``BINARY_VECTOR`` collections, searched by Hamming distance.

One store talks to one Milvus: embedded Milvus Lite (a local ``.db`` file, the default), a
standalone server or a cluster (``http://host:19530``). Every collection it creates has the fields

====================  =====================  ===========================================
field                 Milvus type            meaning
====================  =====================  ===========================================
``id``                INT64, primary key     stable id of the item (chosen by the caller)
``code``              BINARY_VECTOR(n_bits)  the packed code (see :mod:`milvus_hash.codes`)
``source``            VARCHAR(4096)          path or URI of the image ("" if none)
``label``             VARCHAR(256)           optional label ("" stands for none)
``metadata``          JSON                   free-form metadata (a dict)
====================  =====================  ===========================================

and records, in its description, the :class:`~milvus_hash.encoders.spec.EncoderSpec` of the encoder
that writes it. Codes from any other encoder are refused.

Empty input is a no-op everywhere. Errors are those of :mod:`milvus_hash.errors`; each says
whether a retry can help.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from functools import partial
from typing import Iterable, Iterator, Sequence

import numpy as np
from pymilvus import DataType, MilvusClient

from ..codes import (
    PAD_DISTANCE,
    PAD_ID,
    Hits,
    as_codes,
    as_ids,
    bytes_to_codes,
    check_radius,
    codes_to_bytes,
)
from ..encoders.spec import EncoderSpec
from ..errors import (
    CollectionNotFoundError,
    EncoderMismatchError,
    InvalidInputError,
    MilvusHashError,
    MilvusServerError,
    NotAHashCollectionError,
    expected,
)
from .connection import DEFAULT_URI, Connection, resolve_uri, translate_errors
from .records import CollectionInfo, Records, SearchResult

__all__ = ["HashStore", "DEFAULT_URI"]

ID, CODE, SOURCE, LABEL, METADATA = "id", "code", "source", "label", "metadata"
SCALAR_FIELDS = (SOURCE, LABEL, METADATA)
MAX_SOURCE_BYTES = 4096
MAX_LABEL_BYTES = 256
MAX_TOPK = 16384  # Milvus's limit on k (and on the hits of one range search)
#: Codes an answer that returns rows (a page of a stream, a read by id) carries, about. Milvus Lite
#: 2.5.1 slows down sharply above a few hundred KB an answer: streaming 20,000 codes of 20,000 bits
#: took 9.1 s in 2 MiB pages and 1.7-2.0 s in pages of 64-256 KiB; reading 1,500 of them by id
#: 680 ms in queries of 1,000 ids and 100 ms in queries of 100-200 (2026-12-02).
_ANSWER_ROWS_BYTES = 256 << 10
_MIN_ANSWER_ROWS = 64
INDEX_TYPES = ("BIN_FLAT", "BIN_IVF_FLAT", "HNSW")
HNSW_BINARY_SINCE = (2, 6, 4)  # the first Milvus whose HNSW takes binary vectors (knowhere 2.6.3)
DEFAULT_INDEX_PARAMS = {"BIN_FLAT": {}, "BIN_IVF_FLAT": {"nlist": 1024}, "HNSW": {"M": 16, "efConstruction": 200}}
INDEX_PARAM_KEYS = ("nlist", "M", "efConstruction")  # the index parameters the store knows
_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")
DEFAULT_TIMEOUT = 30.0
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_RECORD_KEY = "milvus_hash"
_BATCH_BYTES = 16 * 1024 * 1024  # one write request stays well under gRPC's message limit
_QUERY_ID_CHUNK = 1000  # ids a query or delete names at most
#: How rows are sent: ``"columns"`` through pymilvus's ORM ``Collection`` (2.3-3.8x faster here;
#: deprecated in pymilvus 3.0, announced for removal in 3.1), ``"rows"`` through ``MilvusClient``
#: (the API that stays), ``"auto"`` columns while pymilvus has the ORM, else rows.
WRITE_PATHS = ("auto", "columns", "rows")
_ANSWER_BYTES = 64 * 1024 * 1024  # a search answer that carries codes stays under this


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise expected("collection", "a name of letters, digits and '_' that does not start with a digit "
                       "(at most 255 characters)", repr(name))
    return name


def _number(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def parse_version(text: object) -> tuple[int, int, int] | None:
    """``(2, 6, 4)`` from a Milvus version string such as ``"v2.6.4"`` or ``"2.6.4-rc1"``; None if none."""
    m = _VERSION_RE.search(str(text or ""))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def _check_positive_int(value: object, argument: str, upper: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise expected(argument, "a positive int", repr(value))
    if upper is not None and int(value) > upper:
        raise expected(argument, f"an int of at most {upper} (Milvus's limit)", int(value))
    return int(value)


class HashStore:
    """Binary codes in Milvus, searched by Hamming distance.

    Args:
        uri: a Milvus Lite file (a path ending in ``.db``, default ``./milvus_hash.db``) or a server
            or cluster address such as ``http://localhost:19530`` (``https://`` for TLS).
        token: ``"user:password"`` or an API key, for servers with authentication.
        user, password: the alternative to ``token``.
        db_name: the Milvus database (server only; default ``default``).
        timeout: seconds any one Milvus call may take before :class:`MilvusUnavailableError`.
        consistency_level: of every read (search, query, count) and of new collections.
            ``"Session"`` (default): a process sees its own writes in its next read, and other
            processes' writes within the server's bounded staleness (about a second); ``"Strong"``:
            every read waits for every write (about 200 ms more a read on a Milvus 2.3 server);
            ``"Bounded"`` / ``"Eventually"``: fastest, own writes may be missed for a moment.
        write_path: ``"auto"`` (default: column writes while pymilvus has its ORM, else rows),
            ``"columns"`` or ``"rows"`` (:data:`WRITE_PATHS`). Large loads into a server:
            :meth:`bulk_import`.
        **tls: passed through to pymilvus (``secure``, ``server_pem_path``, ``server_name``,
            ``ca_pem_path``, ``client_pem_path``, ``client_key_path``).

    Example::

        store = HashStore("./milvus_hash.db")
        store.create_collection("images", encoder=hasher.encoder_spec())
        store.upsert("images", ids=ids, codes=codes, encoder=hasher.encoder_spec(), sources=paths)
        hits = store.search("images", codes=query_codes, k=10)
    """

    def __init__(
        self,
        uri: str = DEFAULT_URI,
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        db_name: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        consistency_level: str = "Session",
        write_path: str = "auto",
        **tls,
    ):
        self.target = resolve_uri(uri)
        if write_path not in WRITE_PATHS:
            raise expected("write_path", f"one of {WRITE_PATHS}", repr(write_path))
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise expected("timeout", "a positive number of seconds", repr(timeout))
        if consistency_level not in ("Strong", "Bounded", "Session", "Eventually"):
            raise expected("consistency_level", "one of Strong, Bounded, Session, Eventually", repr(consistency_level))
        allowed_tls = {"secure", "server_pem_path", "server_name", "ca_pem_path", "client_pem_path", "client_key_path"}
        unknown = set(tls) - allowed_tls
        if unknown:
            raise expected("keyword arguments", f"TLS options among {sorted(allowed_tls)}", sorted(unknown))
        if self.target.credentials and not (token or user or password):
            token = self.target.credentials  # given inside the URI: used, never shown
        kwargs = {k: v for k, v in dict(token=token, user=user, password=password, db_name=db_name).items() if v}
        kwargs.update(tls)
        self.timeout = float(timeout)
        self.consistency_level = consistency_level
        self.write_path = write_path
        self._read = {"consistency_level": consistency_level}
        self._written: set[str] = set()  # collections written since this store last read them at Strong
        self._conn = Connection(self.target, timeout=self.timeout, **kwargs)
        self._info: dict[str, CollectionInfo] = {}
        self._version: tuple[int, int, int] | None | bool = False  # False: not asked yet

    # ------------------------------------------------------------------ lifecycle
    @property
    def uri(self) -> str:
        return self.target.uri

    @property
    def embedded(self) -> bool:
        """True for Milvus Lite (a local file), False for a server or cluster."""
        return self.target.embedded

    @property
    def server_version(self) -> tuple[int, int, int] | None:
        """The server's Milvus version, e.g. ``(2, 3, 5)``; None on Milvus Lite (it does not say) or
        when the server's answer holds no version number."""
        if self._version is False:
            self._version = None
            if not self.embedded:
                raw = self._call("get server version", None, self._client.get_server_version)
                self._version = parse_version(raw)
        return self._version

    def index_types(self) -> tuple[str, ...]:
        """The Hamming indexes this Milvus builds on binary codes, exact first, fastest last:
        ``("BIN_FLAT",)`` on Milvus Lite, ``+ "BIN_IVF_FLAT"`` on a server, ``+ "HNSW"`` from
        Milvus 2.6.4 (a server whose version is unknown is taken to be older)."""
        if self.embedded:
            return ("BIN_FLAT",)
        version = self.server_version
        if version is not None and version >= HNSW_BINARY_SINCE:
            return INDEX_TYPES
        return ("BIN_FLAT", "BIN_IVF_FLAT")

    def resolve_index(self, index_type: object) -> str:
        """The index ``create_collection(index_type=...)`` would build here (``"auto"`` resolved), or
        the :class:`InvalidInputError` it would raise."""
        if isinstance(index_type, str) and index_type.lower() == "auto":
            return self.index_types()[-1]
        if index_type == "BIN_FLAT":  # every Milvus has it: no need to ask the server its version
            return index_type
        if index_type not in INDEX_TYPES:
            raise expected("index_type", f"'auto' or one of {INDEX_TYPES}", repr(index_type))
        have = self.index_types()
        if index_type not in have:
            if self.embedded:
                where = "Milvus Lite (it has no other binary index)"
            else:
                version = ".".join(map(str, self.server_version)) if self.server_version else "of unknown version"
                where = (f"this Milvus server ({version}; HNSW on binary codes needs Milvus "
                         f"{'.'.join(map(str, HNSW_BINARY_SINCE))} or later)")
            raise expected("index_type", f"one of {have} on {where}", repr(index_type))
        return index_type

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "HashStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HashStore({self.target})"

    def read_level(self, collection: str) -> dict:
        """The consistency of the next read of ``collection``: the store's level, or ``Strong`` once
        after this store wrote to it under ``Session`` (pymilvus does not track every write's
        timestamp, e.g. deletes on Milvus 2.3, so this store makes sure it sees its own writes)."""
        if self.consistency_level == "Session" and collection in self._written:
            self._written.discard(collection)
            return {"consistency_level": "Strong"}
        return self._read

    def mark_written(self, collection: str) -> None:
        """Note a write to ``collection`` made around the store's write methods (e.g. definitions)."""
        self._written.add(collection)

    def _call(self, action: str, collection: str | None, fn, *args, **kwargs):
        with translate_errors(action, self.target, collection):
            return fn(*args, timeout=self.timeout, **kwargs)

    @property
    def _client(self) -> MilvusClient:
        return self._conn.client

    # ------------------------------------------------------------------ collections
    def create_collection(
        self,
        collection: str,
        *,
        encoder: EncoderSpec,
        index_type: str = "BIN_FLAT",
        index_params: dict | None = None,
        exist_ok: bool = True,
    ) -> CollectionInfo:
        """Create a collection for codes of ``encoder``, with a Hamming index, loaded for search.

        ``index_type``:

        - ``"BIN_FLAT"`` (the default): exact, the only one Milvus Lite has; searches equal numpy's.
        - ``"BIN_IVF_FLAT"`` (servers): clusters of codes, ``index_params={"nlist": 1024}`` by
          default; a search visits ``nprobe`` of them (16 by default).
        - ``"HNSW"`` (Milvus 2.6.4 and later): a graph, ``{"M": 16, "efConstruction": 200}`` by
          default; a search explores ``ef`` candidates (``max(k, 64)`` by default).
        - ``"auto"``: the last of :meth:`index_types`, the fastest this Milvus has (approximate on
          a server).

        An index this Milvus does not build is an :class:`InvalidInputError` that names its version.
        If the collection exists and was written by the same encoder it is returned as it is
        (``exist_ok``; its index is not changed); by another encoder, it is an
        :class:`EncoderMismatchError`.
        """
        _check_name(collection)
        if not isinstance(encoder, EncoderSpec):
            raise expected("encoder", "an EncoderSpec (e.g. hasher.encoder_spec())", type(encoder).__name__)
        if index_params is not None and not isinstance(index_params, dict):
            raise expected("index_params", "a dict such as {'nlist': 1024}", type(index_params).__name__)
        index_type = self.resolve_index(index_type)
        params = {**DEFAULT_INDEX_PARAMS[index_type], **(index_params or {})}
        if self.has_collection(collection):
            if not exist_ok:
                raise InvalidInputError(f"collection: {collection!r} already exists in {self.target}")
            info = self.describe_collection(collection)
            self._check_encoder(info, encoder)
            return info
        schema = _schema(encoder)
        index = self._client.prepare_index_params()
        # a copy: pymilvus 2.5 writes index_type and metric_type into the dict it is given
        index.add_index(field_name=CODE, index_type=index_type, metric_type="HAMMING", params=dict(params))
        self._call("create collection", collection, self._client.create_collection, collection,
                   schema=schema, index_params=index, consistency_level=self.consistency_level)
        info = CollectionInfo(collection, encoder, index_type, params)
        self._info[collection] = info
        return info

    def has_collection(self, collection: str) -> bool:
        _check_name(collection)
        return bool(self._call("has_collection", None, self._client.has_collection, collection))

    def list_collections(self) -> list[str]:
        """Names of the milvus-hash collections in this Milvus (others are left out), sorted."""
        names = self._call("list collections", None, self._client.list_collections)
        out = []
        for name in sorted(names):
            try:
                self.describe_collection(name)
            except NotAHashCollectionError:
                continue
            out.append(name)
        return out

    def describe_collection(self, collection: str) -> CollectionInfo:
        """The collection's encoder, code length and index. Unknown names raise CollectionNotFoundError."""
        _check_name(collection)
        if collection in self._info:
            return self._info[collection]
        if not self.has_collection(collection):  # asked first: pymilvus logs a traceback otherwise
            raise CollectionNotFoundError(f"describe collection on {self.target}: no collection {collection!r}"
                                          f"{self._collections_here()}")
        desc = self._call("describe collection", collection, self._client.describe_collection, collection)
        try:
            record = json.loads(desc.get("description") or "{}")[_RECORD_KEY]
            encoder = EncoderSpec.from_dict(record["encoder"])
        except (ValueError, KeyError, TypeError, InvalidInputError) as exc:
            raise NotAHashCollectionError(
                f"collection {collection!r} in {self.target} was not created by milvus-hash "
                "(its description holds no encoder record)") from exc
        index_type, index_params = "BIN_FLAT", {}
        indexes = self._call("list indexes", collection, self._client.list_indexes, collection)
        if indexes:
            idx = self._call("describe index", collection, self._client.describe_index, collection, indexes[0])
            index_type = idx.get("index_type", index_type)
            index_params = {k: _number(v) for k, v in idx.items() if k in INDEX_PARAM_KEYS}
        info = CollectionInfo(collection, encoder, index_type, index_params)
        self._info[collection] = info
        return info

    def _collections_here(self) -> str:
        """``"; collections here: a, b"`` (a typo's likely intent), or that there are none."""
        try:
            names = sorted(self._call("list collections", None, self._client.list_collections))
        except MilvusHashError:
            return ""
        if not names:
            return "; there are no collections here"
        return f"; collections here: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''}"

    def drop_collection(self, collection: str) -> None:
        """Drop a collection and its codes. Dropping a missing collection is a no-op."""
        _check_name(collection)
        self._info.pop(collection, None)
        self._conn.forget(collection)
        if self.has_collection(collection):
            self._call("drop collection", collection, self._client.drop_collection, collection)

    def count(self, collection: str) -> int:
        """Number of rows in the collection."""
        self.describe_collection(collection)
        res = self._call("count", collection, self._client.query, collection, filter="",
                         output_fields=["count(*)"], **self.read_level(collection))
        return int(res[0]["count(*)"])

    def flush(self, collection: str) -> None:
        """Seal the collection's growing segments so the server indexes them (optional)."""
        self.describe_collection(collection)
        self._call("flush", collection, self._client.flush, collection)

    @staticmethod
    def _check_encoder(info: CollectionInfo, encoder: EncoderSpec | None) -> None:
        if encoder is None:
            return
        if not isinstance(encoder, EncoderSpec):
            raise expected("encoder", "an EncoderSpec", type(encoder).__name__)
        if encoder != info.encoder:
            raise EncoderMismatchError(
                f"collection {info.name!r} holds codes of encoder {info.encoder}; "
                f"these come from encoder {encoder}. Write them to another collection, "
                "or re-encode the collection with one encoder.")

    # ------------------------------------------------------------------ writes
    def insert(self, collection: str, *, ids, codes, encoder: EncoderSpec, sources=None, labels=None,
               metadata=None, batch_size: int = 10_000) -> int:
        """Insert new rows (fastest). Ids must not be in the collection yet: Milvus does not check
        primary keys on insert, so an existing id would be stored twice. Use :meth:`upsert` when
        rows may exist already (reruns, resumed ingestion). Returns the number of rows written."""
        return self._write("insert", collection, ids, codes, encoder, sources, labels, metadata, batch_size)

    def upsert(self, collection: str, *, ids, codes, encoder: EncoderSpec, sources=None, labels=None,
               metadata=None, batch_size: int = 10_000) -> int:
        """Insert rows or replace those whose id exists (idempotent). Returns the number written.

        Args:
            ids: ``int64 (n,)`` unique ids.
            codes: ``uint8 (n, n_bits // 8)`` packed codes of ``encoder``.
            encoder: the encoder that made the codes; must be the collection's.
            sources: ``n`` strings (paths or URIs), optional.
            labels: ``n`` labels (str or int; None for none), optional.
            metadata: ``n`` JSON-serialisable dicts, optional.
            batch_size: rows per request (requests are also capped at 16 MiB).
        """
        return self._write("upsert", collection, ids, codes, encoder, sources, labels, metadata, batch_size)

    def _rows(self, collection, ids, codes, encoder, sources, labels, metadata):
        """The rows to write, checked: ``(ids int64 (n,), codes uint8 (n, b), sources, labels, metadata)``."""
        info = self.describe_collection(collection)
        if encoder is None:
            raise expected("encoder", "the EncoderSpec of the encoder that made these codes", None)
        self._check_encoder(info, encoder)
        codes = as_codes(codes, n_bits=info.n_bits)
        n = codes.shape[0]
        ids = as_ids(ids, n=n)
        duplicated = _count_duplicates(ids) if n else 0
        if duplicated:
            raise expected("ids", "unique ids", f"{duplicated} duplicated")
        sources = _column(sources, n, "sources", _clean_source)
        labels = _column(labels, n, "labels", _clean_label)
        metadata = _column(metadata, n, "metadata", _clean_metadata)
        return ids, codes, sources, labels, metadata

    def _write(self, mode, collection, ids, codes, encoder, sources, labels, metadata, batch_size) -> int:
        given_sources, given_metadata = sources is not None, metadata is not None
        batch_size = _check_positive_int(batch_size, "batch_size")
        rows = self._rows(collection, ids, codes, encoder, sources, labels, metadata)
        return self._send(mode, collection, *rows, batch_size=batch_size, long_sources=given_sources,
                          long_metadata=given_metadata)

    def _send(self, mode, collection, ids, codes, sources, labels, metadata, *, batch_size: int = 10_000,
              long_sources: bool = True, long_metadata: bool = True) -> int:
        """Write checked rows (:meth:`_rows`) in requests of at most ``batch_size`` rows and 16 MiB."""
        n = codes.shape[0]
        if n == 0:
            return 0
        row_bytes = codes.shape[1] + 64
        if long_sources:
            row_bytes += max((len(s) for s in sources), default=0)
        if long_metadata:
            row_bytes += max((len(json.dumps(m)) for m in metadata if m), default=0)
        step = max(1, min(batch_size, _BATCH_BYTES // row_bytes))
        written = 0
        for start in range(0, n, step):
            stop = min(n, start + step)
            self.write_columns(mode, collection, {
                ID: ids[start:stop].tolist(), CODE: codes_to_bytes(codes[start:stop]), SOURCE: sources[start:stop],
                LABEL: labels[start:stop], METADATA: metadata[start:stop]})
            written += stop - start
        return written

    def bulk_import(self, collection: str, *, ids, codes, encoder: EncoderSpec, stage, sources=None, labels=None,
                    metadata=None, timeout: float = 3600.0, progress=None) -> dict[str, int]:
        """Write rows through Milvus's bulk import, for large loads into a server.

        Rows whose id the collection already holds are upserted (an import only appends, so a rerun
        writes nothing twice); the new ones are written as the NumPy files of pymilvus's BulkWriter,
        staged where the server reads them, imported, and counted: the call returns once the
        collection shows every one of them (at ``Strong`` consistency), and the files are removed.

        Args: as :meth:`upsert`, plus
            stage: where the server reads the files (:mod:`milvus_hash.store.bulk_stage`): a
                directory, for a server with local storage; ``s3://BUCKET/PREFIX`` (or a
                :class:`BucketStage`), for a server on MinIO / S3, BUCKET being its own bucket:
                the files are uploaded there (endpoint and credentials from ``AWS_ENDPOINT_URL_S3`` /
                ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``).
            timeout: seconds for the import and for the rows to show.
            progress: called with the import's percent and its rows so far.
        Returns ``{"imported": new rows, "upserted": rows that existed}``.

        Raises :class:`InvalidInputError` on Milvus Lite (it has no import) or a bad stage;
        :class:`StorageUnavailableError` when the stage's object storage does not answer (retryable);
        :class:`MilvusServerError` when the import fails or its rows do not all show within ``timeout``.
        """
        from . import bulk
        from .bulk_stage import open_stage

        if self.embedded:
            raise expected("uri", "a Milvus server for a bulk import (Milvus Lite has no import: write with "
                                  "upsert, or leave out --bulk)", f"Milvus Lite at {self.target}")
        stage = open_stage(stage)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise expected("timeout", "a positive number of seconds", repr(timeout))
        ids, codes, sources, labels, metadata = self._rows(collection, ids, codes, encoder, sources, labels, metadata)
        if ids.size == 0:
            return {"imported": 0, "upserted": 0}
        stage.check()  # a missing bucket, refused credentials, an unwritable directory: before anything
        deadline = time.monotonic() + float(timeout)
        alias = self._conn.orm_alias()
        before = self._strong_count(collection)
        # a run interrupted or killed once the server had its import left the import going on, and its
        # files and a marker staged (bulk_stage.Staged): its rows must show before the stored ids are
        # read, or they would be imported a second time
        left = stage.leftovers(collection)
        for files, task in left:
            with translate_errors("bulk import", self.target, collection):
                rows = bulk.wait_for_task(alias, task, timeout=max(1.0, deadline - time.monotonic()))
            if rows:  # they show seconds after their import completes; if not in 2 minutes, they never will
                self._wait_for_ids(collection, stage.read_ids(files), min(deadline, time.monotonic() + 120.0))
            stage.discard(files)
        if left:
            before = self._strong_count(collection)
        # an import only appends: ids already stored are upserted instead (none to look for in an empty collection)
        stored = np.isin(ids, self.get(collection, ids=ids, with_codes=False).ids) if before else \
            np.zeros(ids.size, bool)
        upserted = 0
        if stored.any():
            pick = np.flatnonzero(stored).tolist()
            upserted = self._send("upsert", collection, ids[stored], codes[stored], [sources[i] for i in pick],
                                  [labels[i] for i in pick], [metadata[i] for i in pick])
        new = np.flatnonzero(~stored).tolist()
        if not new:
            return {"imported": 0, "upserted": upserted}
        columns = {ID: ids[new], CODE: codes[new], SOURCE: [sources[i] for i in new],
                   LABEL: [labels[i] for i in new], METADATA: [metadata[i] for i in new]}
        with stage.files(columns) as staged:
            imported = 0
            for files in staged.groups:
                try:
                    with translate_errors("bulk import", self.target, collection):
                        imported += bulk.run_import(alias, collection, files, progress=progress, hint=stage.hint(),
                                                    timeout=max(1.0, deadline - time.monotonic()),
                                                    submitted=partial(staged.submitted, files, collection))
                except MilvusServerError as exc:
                    if not exc.retryable:  # the import failed: its files are of no use to a rerun
                        staged.finished()
                    raise
            self._written.add(collection)
            if imported != len(new):
                staged.finished()
                raise MilvusServerError(f"bulk import into {collection!r}: the server imported {imported:,} "
                                        f"rows of {len(new):,}")
            self._wait_for_count(collection, before + len(new), deadline, "imported rows")
            staged.finished()
        return {"imported": len(new), "upserted": upserted}

    def _wait_for_count(self, collection: str, count: int, deadline: float, what: str) -> int:
        """Wait until the collection shows ``count`` rows at Strong consistency (imported segments
        show once the query node loads them); returns the count shown."""
        while (shown := self._strong_count(collection)) < count:
            if time.monotonic() > deadline:
                raise MilvusServerError(f"bulk import into {collection!r}: {shown:,} rows show, {count:,} expected "
                                        f"with the {what}, at the deadline", retryable=True)
            time.sleep(0.5)
        return shown

    def _wait_for_ids(self, collection: str, ids: np.ndarray, deadline: float) -> bool:
        """Wait until every id of ``ids`` shows at Strong consistency (a sample of them first);
        ``False`` if they do not by ``deadline`` (deleted since, say)."""
        ids = np.unique(ids)
        sample = ids[np.linspace(0, ids.size - 1, min(ids.size, _QUERY_ID_CHUNK)).astype(int)] if ids.size else ids
        for part in (sample, ids):
            while self._count_ids(collection, part) < part.size:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.5)
        return True

    def _count_ids(self, collection: str, ids: np.ndarray) -> int:
        shown = 0
        for start in range(0, ids.shape[0], _QUERY_ID_CHUNK):
            chunk = ids[start:start + _QUERY_ID_CHUNK]
            res = self._call("count", collection, self._client.query, collection, output_fields=["count(*)"],
                             filter=f"{ID} in [{','.join(map(str, chunk.tolist()))}]", consistency_level="Strong")
            shown += int(res[0]["count(*)"])
        return shown

    def _strong_count(self, collection: str) -> int:
        res = self._call("count", collection, self._client.query, collection, filter="",
                         output_fields=["count(*)"], consistency_level="Strong")
        return int(res[0]["count(*)"])

    def write_columns(self, mode: str, collection: str, columns: dict[str, list]) -> None:
        """One ``insert`` or ``upsert`` request of whole columns (every field of the schema, in its
        order), sent as :data:`WRITE_PATHS` and the store's ``write_path`` say: column-wise through
        pymilvus's ORM where it has one (2.3-3.8x faster than rows, and its row path checks long
        strings character by character), else row-wise through ``MilvusClient``."""
        orm = None
        if self.write_path != "rows":
            with translate_errors(mode, self.target, collection):
                orm = self._conn.orm_collection(collection)
            if orm is None and self.write_path == "columns":
                import pymilvus

                raise expected("write_path", "'auto' or 'rows' with this pymilvus (it has no ORM for column writes)",
                               f"'columns' with pymilvus {pymilvus.__version__}")
        self._written.add(collection)
        if orm is not None:
            with warnings.catch_warnings():  # the ORM's deprecation notice, once per request
                warnings.simplefilter("ignore")
                self._call(mode, collection, getattr(orm, mode), list(columns.values()))
        else:  # write_path="rows", or a pymilvus without the ORM (3.1 and later)
            rows = [dict(zip(columns, r)) for r in zip(*columns.values())]
            self._call(mode, collection, getattr(self._client, mode), collection, rows)

    def delete(self, collection: str, *, ids) -> int:
        """Delete the rows of ``ids`` (``int64 (n,)``); ids not stored are ignored. Empty input is a
        no-op. Returns the number of ids asked for."""
        self.describe_collection(collection)
        ids = as_ids(ids)
        for start in range(0, ids.shape[0], _QUERY_ID_CHUNK):
            chunk = ids[start:start + _QUERY_ID_CHUNK]
            self._written.add(collection)
            self._call("delete", collection, self._client.delete, collection,
                       filter=f"{ID} in [{','.join(map(str, chunk.tolist()))}]")
        return int(ids.shape[0])

    # ------------------------------------------------------------------ reads
    def get(self, collection: str, *, ids, with_codes: bool = True) -> Records:
        """Rows by id, in the order asked; ids not found are listed in ``Records.missing``."""
        info = self.describe_collection(collection)
        ids = as_ids(ids)
        fields = [ID] + ([CODE] if with_codes else []) + list(SCALAR_FIELDS)
        found: dict[int, dict] = {}
        step = _rows_per_answer(info.n_bits, _QUERY_ID_CHUNK) if with_codes else _QUERY_ID_CHUNK
        for start in range(0, ids.shape[0], step):
            chunk = ids[start:start + step]
            rows = self._call("get", collection, self._client.query, collection,
                              filter=f"{ID} in [{','.join(map(str, chunk.tolist()))}]", output_fields=fields,
                              **self.read_level(collection))
            found.update((int(r[ID]), r) for r in rows)
        present = [i for i in ids.tolist() if i in found]
        missing = np.array([i for i in ids.tolist() if i not in found], dtype=np.int64)
        return _records([found[i] for i in present], info.n_bits, with_codes, missing)

    def iter_records(self, collection: str, *, batch_size: int = 10_000, with_codes: bool = True,
                     filter: str = "") -> Iterator[Records]:
        """Stream every row of the collection in batches of at most ``batch_size`` (and about 256 KiB of
        codes), by ascending id.

        Pages by primary key (``id > last``), which works on every Milvus version; memory stays
        bounded by one batch whatever the collection's size.
        """
        info = self.describe_collection(collection)
        batch_size = _check_positive_int(batch_size, "batch_size", MAX_TOPK)
        if with_codes:  # wide codes: small pages (Milvus Lite slows down sharply on larger answers)
            batch_size = _rows_per_answer(info.n_bits, batch_size)
        fields = [ID] + ([CODE] if with_codes else []) + list(SCALAR_FIELDS)
        last = None
        while True:
            clauses = [f"({filter})"] if filter else []
            if last is not None:
                clauses.append(f"{ID} > {last}")
            rows = self._call("iterate", collection, self._client.query, collection,
                              filter=" and ".join(clauses), output_fields=fields, limit=batch_size,
                              **self.read_level(collection))
            if not rows:
                return
            rows = sorted(rows, key=lambda r: int(r[ID]))
            yield _records(rows, info.n_bits, with_codes)
            last = int(rows[-1][ID])
            if len(rows) < batch_size:
                return

    def iter_codes(self, collection: str, *, batch_size: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(ids int64 (b,), codes uint8 (b, n_bytes))`` batches of the whole collection."""
        for rec in self.iter_records(collection, batch_size=batch_size, with_codes=True):
            yield rec.ids, rec.codes

    # ------------------------------------------------------------------ search
    def search(self, collection: str, *, codes, k: int = 10, filter: str = "", ties: str = "any",
               output_fields: Sequence[str] | None = None, encoder: EncoderSpec | None = None,
               nprobe: int | None = None, ef: int | None = None) -> SearchResult:
        """Top-k by Hamming distance for each query code.

        Args:
            codes: ``uint8 (nq, n_bits // 8)`` query codes (one code of shape ``(n_bytes,)`` is fine).
            k: hits per query, at most 16,384.
            filter: a Milvus boolean expression on the scalar fields, e.g. ``'label == "cat"'``.
            ties: ``"any"`` (default, fastest) keeps Milvus's choice among codes tied at the k-th
                distance; ``"id"`` returns exactly the smallest ids among them, as
                :func:`milvus_hash.codes.hamming_topk` does (costs one range search per distinct
                k-th distance).
            output_fields: any of ``source``, ``label``, ``metadata`` to return with each hit.
            encoder: if given, checked against the collection's encoder.
            nprobe: clusters to visit with a ``BIN_IVF_FLAT`` index (default 16).
            ef: candidates to explore with an ``HNSW`` index, at least ``k`` (default ``max(k, 64)``).

        Returns:
            :class:`SearchResult` with ``ids int64 (nq, k)`` and ``distances int32 (nq, k)``,
            rows sorted by (distance, id) and padded with -1 / int32 max.
        """
        info = self.describe_collection(collection)
        self._check_encoder(info, encoder)
        k = _check_positive_int(k, "k", MAX_TOPK)
        if ties not in ("any", "id"):
            raise expected("ties", "'any' or 'id'", repr(ties))
        out_fields = _check_output_fields(output_fields)
        q = as_codes(codes, n_bits=info.n_bits)
        nq = q.shape[0]
        ids = np.full((nq, k), PAD_ID, dtype=np.int64)
        dist = np.full((nq, k), PAD_DISTANCE, dtype=np.int32)
        fields: list[list[dict]] | None = [] if out_fields else None
        params = self._search_params(info, k, nprobe=nprobe, ef=ef)
        chunk = max(1, min(1024, 1_000_000 // k))
        for start in range(0, nq, chunk):
            res = self._call("search", collection, self._client.search, collection,
                             data=codes_to_bytes(q[start:start + chunk]), anns_field=CODE, limit=k,
                             filter=filter, search_params=params, output_fields=out_fields or [],
                             **self.read_level(collection))
            for j, hits in enumerate(res):
                h_ids, h_dist = _hits_arrays(hits)
                order = np.lexsort((h_ids, h_dist))
                m = order.shape[0]
                ids[start + j, :m] = h_ids[order]
                dist[start + j, :m] = h_dist[order]
                if fields is not None:
                    fields.append([_hit_fields(hits[int(o)]) for o in order])
        if ties == "id":
            self._break_ties_by_id(info, q, ids, dist, filter, params)
            if fields is not None:  # refetch fields: the tie-break may have swapped hits
                fields = self._fields_for(collection, ids, out_fields)
        return SearchResult(ids=ids, distances=dist, fields=fields)

    def neighbours(self, collection: str, *, codes, k: int, encoder: EncoderSpec | None = None) -> Records:
        """The distinct items among the ``k`` nearest of each query (``uint8 (nq, n_bits // 8)``),
        with their codes, sources, labels and metadata, in the order first found (query by query,
        nearest first).

        On a server the codes come back with the hits (one search; answers of at most about 64 MB);
        on Milvus Lite, whose search fails when asked for a binary vector field, they are read by
        id after the search. Memory is bounded by ``nq x k`` codes.
        """
        info = self.describe_collection(collection)
        self._check_encoder(info, encoder)
        k = _check_positive_int(k, "k", MAX_TOPK)
        q = as_codes(codes, n_bits=info.n_bits)
        if self.embedded:
            hits = self.search(collection, codes=q, k=k)
            found = hits.ids[hits.ids != PAD_ID]  # query by query, nearest first
            _, first = np.unique(found, return_index=True)
            return self.get(collection, ids=found[np.sort(first)]) if first.size else _records([], info.n_bits, True)
        params = self._search_params(info, k)
        n_bytes = info.n_bits // 8
        chunk = max(1, min(1024, _ANSWER_BYTES // (k * (n_bytes + 64))))
        seen: set[int] = set()
        ids, codes, sources, labels = [], [], [], []
        for start in range(0, q.shape[0], chunk):
            res = self._call("search", collection, self._client.search, collection,
                             data=codes_to_bytes(q[start:start + chunk]), anns_field=CODE, limit=k,
                             search_params=params, output_fields=[CODE, SOURCE, LABEL],
                             **self.read_level(collection))
            for hits in res:
                h_ids, h_dist = _hits_arrays(hits)
                h_codes = _hit_codes(hits, n_bytes)
                for o in np.lexsort((h_ids, h_dist)).tolist():
                    i = int(h_ids[o])
                    if i not in seen:
                        seen.add(i)
                        entity = hits.get_raw_item(o)["entity"] if hasattr(hits, "get_raw_item") \
                            else hits[o].get("entity", {})
                        ids.append(i)
                        codes.append(h_codes[o] if h_codes is not None else
                                     bytes_to_codes([hits[o]["entity"][CODE]], n_bytes)[0])
                        sources.append(entity.get(SOURCE, ""))
                        labels.append(entity.get(LABEL) or None)
        return Records(ids=np.array(ids, np.int64), codes=np.array(codes, np.uint8).reshape(-1, n_bytes),
                       sources=sources, labels=labels, metadata=[{} for _ in ids])

    def range_search(self, collection: str, *, codes, radius: int, limit: int = MAX_TOPK, filter: str = "",
                     encoder: EncoderSpec | None = None) -> list[Hits]:
        """Every code within Hamming distance ``<= radius`` of each query, sorted by (distance, id).

        Milvus returns at most ``limit`` (<= 16,384) hits per query; when a query reaches it, its
        :class:`~milvus_hash.codes.Hits` has ``truncated=True`` and holds the ``limit`` nearest.
        """
        info = self.describe_collection(collection)
        self._check_encoder(info, encoder)
        radius = check_radius(radius)
        limit = _check_positive_int(limit, "limit", MAX_TOPK)
        q = as_codes(codes, n_bits=info.n_bits)
        params = {"metric_type": "HAMMING", "params": {"radius": radius + 1, "range_filter": 0}}
        out: list[Hits] = []
        chunk = max(1, min(1024, 1_000_000 // limit))
        for start in range(0, q.shape[0], chunk):
            res = self._call("range search", collection, self._client.search, collection,
                             data=codes_to_bytes(q[start:start + chunk]), anns_field=CODE, limit=limit,
                             filter=filter, search_params=params, **self.read_level(collection))
            for hits in res:
                h_ids, h_dist = _hits_arrays(hits)
                order = np.lexsort((h_ids, h_dist))
                out.append(Hits(h_ids[order], h_dist[order], truncated=h_ids.shape[0] >= limit))
        return out

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _search_params(info: CollectionInfo, k: int, *, nprobe: int | None = None, ef: int | None = None) -> dict:
        params: dict = {}
        if nprobe is not None:
            params["nprobe"] = _check_positive_int(nprobe, "nprobe")
        elif info.index_type == "BIN_IVF_FLAT":
            params["nprobe"] = 16
        if ef is not None:
            params["ef"] = _check_positive_int(ef, "ef")
            if params["ef"] < k:
                raise expected("ef", f"an int of at least k = {k}", params["ef"])
        elif info.index_type == "HNSW":
            params["ef"] = max(k, 64)
        return {"metric_type": "HAMMING", "params": params}

    def _tied(self, info: CollectionInfo, queries: np.ndarray, boundary: int, filter: str, params: dict) -> list[np.ndarray]:
        """Ids of all codes at exactly ``boundary`` from each query (sorted; may be capped)."""
        rp = {"metric_type": "HAMMING", "params": {**params["params"], "radius": boundary + 1, "range_filter": boundary}}
        res = self._call("tie-break search", info.name, self._client.search, info.name,
                         data=codes_to_bytes(queries), anns_field=CODE, limit=MAX_TOPK, filter=filter,
                         search_params=rp, **self.read_level(info.name))
        return [np.sort(_hits_arrays(h)[0]) for h in res]

    def _break_ties_by_id(self, info, q, ids, dist, filter, params) -> None:
        k = ids.shape[1]
        full = np.flatnonzero(ids[:, -1] != PAD_ID)
        boundaries = dist[full, -1]
        for b in np.unique(boundaries):
            rows = full[boundaries == b]
            for start in range(0, rows.shape[0], 256):
                part = rows[start:start + 256]
                tied = self._tied(info, q[part], int(b), filter, params)
                for r, t in zip(part.tolist(), tied):
                    below = int((dist[r] < b).sum())
                    need = k - below
                    while t.shape[0] >= MAX_TOPK:  # more ties than one answer holds: narrow by id
                        cut = int(t[need - 1])
                        narrowed = f"({filter}) and {ID} <= {cut}" if filter else f"{ID} <= {cut}"
                        t = self._tied(info, q[r:r + 1], int(b), narrowed, params)[0]
                    if t.shape[0] >= need:  # fewer only if rows vanished meanwhile: keep Milvus's
                        ids[r, below:] = t[:need]
                        dist[r, below:] = b

    def _fields_for(self, collection: str, ids: np.ndarray, out_fields: list[str]) -> list[list[dict]]:
        flat = np.unique(ids[ids != PAD_ID])
        rec = self.get(collection, ids=flat, with_codes=False) if flat.size else None
        lookup = {}
        if rec is not None:
            for i, s, lab, m in zip(rec.ids.tolist(), rec.sources, rec.labels, rec.metadata):
                lookup[i] = {SOURCE: s, LABEL: lab, METADATA: m}
        return [[{f: lookup[i][f] for f in out_fields} for i in row.tolist() if i != PAD_ID] for row in ids]


# ---------------------------------------------------------------------- helpers
def _count_duplicates(ids: np.ndarray) -> int:
    """How many ids repeat an earlier one (O(n) when ids are increasing, as ranges and resumed runs are)."""
    if ids.shape[0] < 2 or bool((ids[1:] > ids[:-1]).all()):
        return 0
    s = np.sort(ids)
    return int((s[1:] == s[:-1]).sum())


def _check_output_fields(output_fields) -> list[str]:
    if output_fields is None:
        return []
    if isinstance(output_fields, str):
        output_fields = [output_fields]
    fields = list(output_fields)
    bad = [f for f in fields if f not in SCALAR_FIELDS]
    if bad:
        raise expected("output_fields", f"names among {SCALAR_FIELDS}", bad)
    return fields


def _hits_arrays(hits) -> tuple[np.ndarray, np.ndarray]:
    h_ids = getattr(hits, "ids", None)
    h_dist = getattr(hits, "distances", None)
    if h_ids is None or h_dist is None:  # older pymilvus: a list of dicts
        h_ids = [h["id"] for h in hits]
        h_dist = [h["distance"] for h in hits]
    return (np.asarray(h_ids, dtype=np.int64).reshape(-1),
            np.rint(np.asarray(h_dist, dtype=np.float64)).astype(np.int32).reshape(-1))


def _hit_codes(hits, n_bytes: int) -> np.ndarray | None:
    """The codes ``uint8 (len(hits), n_bytes)`` of one query's hits, read from the answer's field
    data in one piece (pymilvus 3.0 copies the whole answer's vectors for every hit it decodes:
    280 ms for 1,500 hits of 20,000 bits); None where this pymilvus keeps them otherwise."""
    for data in getattr(hits, "lazy_field_data", ()):
        if getattr(data, "field_name", None) == CODE and hasattr(hits, "start"):
            blob = data.vectors.binary_vector
            if len(blob) >= (hits.start + len(hits)) * n_bytes:
                return np.frombuffer(blob, np.uint8, count=len(hits) * n_bytes,
                                     offset=hits.start * n_bytes).reshape(-1, n_bytes)
    return None


def _hit_fields(hit) -> dict:
    entity = hit.get("entity", {}) if hasattr(hit, "get") else {}
    out = dict(entity)
    if LABEL in out:
        out[LABEL] = out[LABEL] or None
    return out


def _schema(encoder: EncoderSpec):
    """The pymilvus ``CollectionSchema`` of a milvus-hash collection of ``encoder``'s codes."""
    record = {_RECORD_KEY: {"format": 1, "encoder": encoder.to_dict()}}
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                        description=json.dumps(record, sort_keys=True))
    schema.add_field(ID, DataType.INT64, is_primary=True)
    schema.add_field(CODE, DataType.BINARY_VECTOR, dim=encoder.n_bits)
    schema.add_field(SOURCE, DataType.VARCHAR, max_length=MAX_SOURCE_BYTES)
    schema.add_field(LABEL, DataType.VARCHAR, max_length=MAX_LABEL_BYTES)
    schema.add_field(METADATA, DataType.JSON)
    return schema


def _rows_per_answer(n_bits: int, most: int) -> int:
    """Rows of ``n_bits``-bit codes an answer carries: about :data:`_ANSWER_ROWS_BYTES`, at most ``most``."""
    return min(most, max(_MIN_ANSWER_ROWS, _ANSWER_ROWS_BYTES // (n_bits // 8)))


def _records(rows: list[dict], n_bits: int, with_codes: bool, missing=None) -> Records:
    codes = bytes_to_codes([r[CODE] for r in rows], n_bits // 8) if with_codes else None
    return Records(
        ids=np.array([int(r[ID]) for r in rows], dtype=np.int64),
        codes=codes,
        sources=[r.get(SOURCE, "") for r in rows],
        labels=[r.get(LABEL) or None for r in rows],
        metadata=[r.get(METADATA) or {} for r in rows],
        missing=missing if missing is not None else np.empty(0, dtype=np.int64),
    )


def _column(values, n: int, argument: str, clean) -> list:
    if values is None:  # the common case, kept cheap: one shared default per column
        return [clean(None, argument, 0)] * n
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Iterable):
        raise expected(argument, f"a sequence of {n} values, one per code", type(values).__name__)
    values = list(values)
    if len(values) != n:
        raise expected(argument, f"{n} values, one per code", f"{len(values)} values")
    return [clean(v, argument, i) for i, v in enumerate(values)]


def _clean_source(value, argument: str, i: int) -> str:
    if value is None:
        return ""
    if hasattr(value, "__fspath__"):
        value = str(value)
    if not isinstance(value, str):
        raise expected(f"{argument}[{i}]", "a str path or URI", type(value).__name__)
    if len(value.encode()) > MAX_SOURCE_BYTES:
        raise expected(f"{argument}[{i}]", f"at most {MAX_SOURCE_BYTES} bytes", f"{len(value.encode())} bytes")
    return value


def _clean_label(value, argument: str, i: int) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (str, int, np.integer)):
        raise expected(f"{argument}[{i}]", "a str or int label, or None", type(value).__name__)
    text = str(value)
    if text == "":
        raise expected(f"{argument}[{i}]", "a non-empty label or None", "an empty string")
    if len(text.encode()) > MAX_LABEL_BYTES:
        raise expected(f"{argument}[{i}]", f"at most {MAX_LABEL_BYTES} bytes", f"{len(text.encode())} bytes")
    return text


def _clean_metadata(value, argument: str, i: int) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise expected(f"{argument}[{i}]", "a dict (JSON object) or None", type(value).__name__)
    if value:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise expected(f"{argument}[{i}]", "a JSON-serialisable dict", f"{exc}") from exc
    return value
