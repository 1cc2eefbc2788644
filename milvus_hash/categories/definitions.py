"""Category definitions persisted in Milvus itself, so another process or a restarted client sees them.

A small collection (``milvus_hash_categories`` by default) holds, per definition, one *head* row (its
JSON description: name, method, parameters, library fingerprint, examples' ids, creation time, the
version of its arrays) and the *parts* of its arrays (an ``.npz`` without pickle, base64, split into
VARCHAR rows of at most 60,000 characters: a 20,000 x 16 projection takes about 30 rows).

Redefining a name is atomic for readers: the new version's parts are written first, then the head
row is upserted (one row: atomic) to point at them, then the old version's parts are deleted (by
key; parts a crashed redefinition left behind go when the name is dropped). A reader reads
the head, then the parts of the version it names.

Consistency: a process sees its own definitions at once, and redefines a name it defined without
reading it again (its own last head names the parts to delete). Reading a name this process wrote or
dropped is at the store's level (under Session, pymilvus makes the read wait for this process's
inserts and upserts; Milvus 2.3 gives deletes no timestamp, so a drop makes the next read Strong);
reading any other name is at Bounded, which no write of this process delays (on Milvus 2.3 such a
wait is about 200 ms, as long as a whole category definition takes to compute). Deleting old parts
needs no wait (readers ask for a version); parts another process has just written are read again at
Strong when some are not visible yet. Milvus requires a vector field in every collection:
a 2-D float vector, always zero, fills that role.
"""

from __future__ import annotations

import base64
import io
import json
import re
import uuid

import numpy as np
from pymilvus import DataType, MilvusClient

from ..errors import InvalidInputError, MilvusHashError, expected

DEFINITIONS = "milvus_hash_categories"
_PART_CHARS = 60_000
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


class CategoryNotFoundError(MilvusHashError, LookupError):
    """No category of that name is defined for this collection. Retrying cannot help."""


class CategoryExistsError(InvalidInputError):
    """``define`` was given a name that is defined already, without ``replace=True``."""


def check_category_name(name) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise expected("name", "1 to 128 characters among letters, digits, '_', '.', '-'", repr(name))
    return name


def _pack_arrays(arrays: dict[str, np.ndarray]) -> list[str]:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    text = base64.b64encode(buf.getvalue()).decode()
    return [text[i:i + _PART_CHARS] for i in range(0, len(text), _PART_CHARS)] or [""]


def _unpack_arrays(parts: list[str]) -> dict[str, np.ndarray]:
    raw = base64.b64decode("".join(parts))
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# The heads this process wrote (None: dropped; _UNREAD: a write that failed), per Milvus and
# definitions collection: a redefinition replaces what it remembers without a read. Reading one of
# these names must see this process's own writes (the store's read level, which waits for them);
# any other name is read at Bounded, which no own write can delay (about 200 ms a read on Milvus 2.3).
_KNOWN: dict[tuple[str, str, str], dict[str, object]] = {}
_UNREAD = object()


class DefinitionStore:
    """Definitions of one library collection, in the definitions collection of the same Milvus."""

    def __init__(self, store, collection: str, *, definitions: str = DEFINITIONS):
        self.store, self.collection, self.definitions = store, collection, definitions
        # what this process wrote, by category name, for this library collection only: another
        # collection's category of the same name is another category
        self._known = _KNOWN.setdefault((store.uri, definitions, collection), {})
        self._ensure()

    @property
    def _client(self) -> MilvusClient:
        return self.store._client

    def _call(self, action, fn, *args, **kwargs):
        return self.store._call(action, self.definitions, fn, *args, **kwargs)

    def _query(self, action, name: str | None = None, **kwargs):
        """A read that sees this process's own writes: at the store's consistency level, or, for a
        read of one ``name`` this process never wrote, at Bounded (no wait for other names' writes)."""
        level = self.store.read_level(self.definitions) if name is None or name in self._known \
            or self.store.consistency_level != "Session" else {"consistency_level": "Bounded"}
        return self._call(action, self._client.query, self.definitions, **level, **kwargs)

    def _ensure(self) -> None:
        if self._call("has collection", self._client.has_collection, self.definitions):
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                            description="milvus-hash category definitions")
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("collection", DataType.VARCHAR, max_length=256)
        schema.add_field("name", DataType.VARCHAR, max_length=256)
        schema.add_field("version", DataType.VARCHAR, max_length=64)
        schema.add_field("part", DataType.INT64)
        schema.add_field("payload", DataType.VARCHAR, max_length=65_535)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
        index = self._client.prepare_index_params()
        index.add_index(field_name="vec", index_type="FLAT", metric_type="L2")
        self._call("create collection", self._client.create_collection, self.definitions, schema=schema,
                   index_params=index, consistency_level=self.store.consistency_level)

    def _head_key(self, name: str) -> str:
        return f"head/{self.collection}/{name}"

    def _row(self, key, name, version, part, payload) -> dict:
        return {"key": key, "collection": self.collection, "name": name, "version": version, "part": part,
                "payload": payload, "vec": [0.0, 0.0]}

    def find(self, name: str) -> dict | None:
        """The head of ``name`` (its description), or None when it is not defined."""
        check_category_name(name)
        rows = self._query("read definition", name, filter=f'key == "{self._head_key(name)}"',
                           output_fields=["payload"])
        return json.loads(rows[0]["payload"]) if rows else None

    def previous(self, name: str) -> dict | None:
        """The head a new definition of ``name`` replaces (None: a new name): the one this process
        wrote last, without a read, else :meth:`find`. (Should another process have redefined the
        name since, its parts stay until the name is dropped; should it have dropped it, the name
        counts as defined here: ``replace=True`` redefines it.)"""
        check_category_name(name)
        known = self._known.get(name, _UNREAD)
        return self.find(name) if known is _UNREAD else known

    def save(self, name: str, description: dict, arrays: dict[str, np.ndarray], *, old=_UNREAD) -> str:
        """Write (or atomically replace) a definition; returns its version. ``old``: the head it
        replaces, when the caller has it from :meth:`previous` (None: a new name)."""
        check_category_name(name)
        version = uuid.uuid4().hex
        if old is _UNREAD:
            old = self.previous(name)
        parts = _pack_arrays(arrays)
        for s in range(0, len(parts), 64):  # at most ~4 MB per request
            chunk = parts[s:s + 64]
            self.store.write_columns("insert", self.definitions, {
                "key": [f"part/{self.collection}/{name}/{version}/{s + i}" for i in range(len(chunk))],
                "collection": [self.collection] * len(chunk), "name": [name] * len(chunk),
                "version": [version] * len(chunk), "part": list(range(s, s + len(chunk))), "payload": chunk,
                "vec": [[0.0, 0.0]] * len(chunk)})
        head = json.dumps({**description, "version": version, "n_parts": len(parts)})
        if len(head) > 65_535:
            raise expected("definition", "a description under 64 KiB (e.g. fewer example ids)", f"{len(head)} bytes")
        self._known[name] = _UNREAD  # written by this process, head unknown until the upsert succeeds
        self._call("write definition", self._client.upsert, self.definitions,
                   [self._row(self._head_key(name), name, version, -1, head)])
        self._known[name] = json.loads(head)
        if old is not None:  # by primary key: a delete by expression costs 100-300 ms on Milvus 2.3
            keys = [f"part/{self.collection}/{name}/{old['version']}/{i}" for i in range(int(old["n_parts"]))]
            self._call("clean definition", self._client.delete, self.definitions, ids=keys)
        return version

    def describe(self, name: str) -> dict:
        head = self.find(name)
        if head is None:
            raise CategoryNotFoundError(f"name: no category {name!r} is defined for collection {self.collection!r}")
        return head

    def load(self, name: str) -> tuple[dict, dict[str, np.ndarray]]:
        head = self.describe(name)
        where = dict(filter=f'collection == "{self.collection}" and name == "{name}" and '
                            f'version == "{head["version"]}" and part >= 0',
                     output_fields=["part", "payload"], limit=16_384)
        rows = sorted(self._query("read definition", name, **where), key=lambda r: r["part"])
        if [r["part"] for r in rows] != list(range(head["n_parts"])):  # another process's parts, not seen yet
            rows = sorted(self._call("read definition", self._client.query, self.definitions,
                                     consistency_level="Strong", **where), key=lambda r: r["part"])
        if [r["part"] for r in rows] != list(range(head["n_parts"])):
            raise MilvusHashError(f"category {name!r}: its arrays are incomplete (a concurrent redefinition?); "
                                  "read it again")
        return head, _unpack_arrays([r["payload"] for r in rows])

    def list(self) -> list[str]:
        rows = self._query("list definitions", filter=f'collection == "{self.collection}" and part == -1',
                           output_fields=["name"], limit=16_384)
        return sorted(r["name"] for r in rows)

    def drop(self, name: str) -> None:
        self.describe(name)
        # Milvus 2.3 gives deletes no timestamp for Session reads: this process's next read is Strong
        self._known[name] = None
        self.store.mark_written(self.definitions)
        self._call("drop definition", self._client.delete, self.definitions,
                   filter=f'collection == "{self.collection}" and name == "{name}"')


__all__ = ["DEFINITIONS", "CategoryExistsError", "CategoryNotFoundError", "DefinitionStore", "InvalidInputError", "check_category_name"]
