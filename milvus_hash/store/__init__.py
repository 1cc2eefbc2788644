"""Stage 3, codes in Milvus: ``BINARY_VECTOR`` collections searched by Hamming distance.

- :mod:`.hash_store`: :class:`HashStore` (create, insert/upsert, search, range search, get, stream,
  count, drop), one encoder per collection;
- :mod:`.connection`: URIs (Milvus Lite file or server), connections, and pymilvus errors translated
  into typed ones;
- :mod:`.records`: the plain result types (:class:`Records`, :class:`SearchResult`,
  :class:`CollectionInfo`);
- :mod:`.local_server`: :class:`LocalMilvusServer`, a real Milvus standalone server without Docker.
"""

from .connection import DEFAULT_URI
from .hash_store import MAX_TOPK, HashStore
from .local_server import LocalMilvusServer
from .records import CollectionInfo, Records, SearchResult

__all__ = ["DEFAULT_URI", "MAX_TOPK", "CollectionInfo", "HashStore", "LocalMilvusServer", "Records", "SearchResult"]
