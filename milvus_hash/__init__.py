"""milvus-hash: learned binary hashing of images, stored and searched in Milvus."""

import warnings as _warnings

# milvus-lite 2.5.1 (the last with BINARY_VECTOR) imports pkg_resources, which warns on every start.
_warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

from .codes import (
    Hits,
    TopK,
    hamming_distances,
    hamming_range,
    hamming_topk,
    pack_bits,
    select_bits,
    unpack_bits,
)
from .encoder import Encoder, EncoderSpec, fingerprint
from .errors import (
    CollectionNotFoundError,
    EncoderMismatchError,
    InvalidInputError,
    MilvusHashError,
    MilvusServerError,
    MilvusUnavailableError,
    NotAHashCollectionError,
)
from .records import CollectionInfo, Records, SearchResult
from .store import DEFAULT_URI, HashStore

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URI", "CollectionInfo", "CollectionNotFoundError", "Encoder", "EncoderMismatchError",
    "EncoderSpec", "HashStore", "Hits", "InvalidInputError", "MilvusHashError", "MilvusServerError",
    "MilvusUnavailableError", "NotAHashCollectionError", "Records", "SearchResult", "TopK",
    "fingerprint", "hamming_distances", "hamming_range", "hamming_topk", "pack_bits", "select_bits",
    "unpack_bits", "__version__",
]
