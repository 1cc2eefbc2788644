"""Stage 3, codes in Milvus: ``BINARY_VECTOR`` collections searched by Hamming distance.

- :mod:`.hash_store`: :class:`HashStore` (create, insert/upsert, search, range search, get, stream,
  count, drop), one encoder per collection;
- :mod:`.uri`: URIs (Milvus Lite file or server), checked without importing pymilvus;
- :mod:`.connection`: connections, and pymilvus errors translated into typed ones;
- :mod:`.records`: the plain result types (:class:`Records`, :class:`SearchResult`,
  :class:`CollectionInfo`);
- :mod:`.bulk`, :mod:`.bulk_stage`: bulk imports: the BulkWriter's NumPy files, staged in a
  directory the server reads (:class:`DirectoryStage`) or uploaded to its bucket (:class:`BucketStage`);
- :mod:`.local_server`: :class:`LocalMilvusServer`, a real Milvus standalone server without Docker.

The names load on first use (pymilvus takes about a second to import): the command line shows
its defaults and checks its arguments before it.
"""

from .._lazy import lazy_exports

_EXPORTS = {"DEFAULT_URI": ".uri", "MAX_TOPK": ".hash_store", "HashStore": ".hash_store",
            "LocalMilvusServer": ".local_server", "CollectionInfo": ".records", "Records": ".records",
            "SearchResult": ".records", "BucketStage": ".bulk_stage", "DirectoryStage": ".bulk_stage"}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
