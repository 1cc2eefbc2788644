"""milvus-hash: learned binary hashing of images, stored and searched in Milvus.

The library follows a datum's way through it, one sub-package a stage:

- :mod:`milvus_hash.features`: images to CNN features (``get_backbone(name, weights=...)``);
- :mod:`milvus_hash.encoders`: features (or images) to binary codes: the UGH library
  (:mod:`~milvus_hash.encoders.ugh`), the UTH network (:mod:`~milvus_hash.encoders.uth`), LSH and
  ITQ baselines, the ``EncoderSpec`` every encoder records, and loading a saved encoder;
- :mod:`milvus_hash.codes`: the one code format (packed ``uint8 (n, n_bits // 8)``) and exact
  Hamming search in numpy;
- :mod:`milvus_hash.store`: codes in Milvus ``BINARY_VECTOR`` collections (:class:`HashStore`);
- :mod:`milvus_hash.categories`: few-shot categories on a store (:class:`HashClient`);
- :mod:`milvus_hash.eval`: the papers' retrieval metrics and protocols.

The public names below are re-exported here and load on first use, so ``import milvus_hash`` is
cheap: torch and pymilvus are imported only by what needs them.
"""

import warnings as _warnings

from ._lazy import lazy_exports

# milvus-lite 2.5.1 (the last with BINARY_VECTOR) imports pkg_resources, which warns on every start.
_warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

__version__ = "0.1.0"

_EXPORTS = {
    # the code format
    **dict.fromkeys(["Hits", "TopK", "hamming_distances", "hamming_range", "hamming_topk", "pack_bits",
                     "select_bits", "unpack_bits"], ".codes"),
    # errors
    **dict.fromkeys(["CollectionNotFoundError", "EncoderMismatchError", "FileHeldError", "InvalidInputError", "MilvusHashError",
                     "MilvusServerError", "MilvusUnavailableError", "NotAHashCollectionError",
                     "StorageUnavailableError", "WeightsUnavailableError"], ".errors"),
    # features
    **dict.fromkeys(["Backbone", "get_backbone"], ".features"),
    # encoders
    **dict.fromkeys(["Encoder", "EncoderSpec", "fingerprint", "load_encoder", "LSHHasher", "ITQHasher",
                     "UGHLibrary", "CCACoder", "L1BitSelector", "UTHEncoder"], ".encoders"),
    # the store
    **dict.fromkeys(["DEFAULT_URI", "HashStore", "CollectionInfo", "Records", "SearchResult",
                     "LocalMilvusServer", "BucketStage", "DirectoryStage"], ".store"),
    # categories
    **dict.fromkeys(["HashClient", "Category", "CategoryNotFoundError", "StaleCategoryWarning"], ".categories"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS) + ["__version__"]
