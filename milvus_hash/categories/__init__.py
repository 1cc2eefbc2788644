"""Stage 4, few-shot categories on a store of UGH library codes.

- :mod:`.client`: :class:`HashClient`, categories defined from a few examples, their queries and
  membership;
- :mod:`.category`: :class:`Category`, a learned category code and its calibrated membership;
- :mod:`.definitions`: definitions persisted in Milvus, atomically redefined.
"""

from .category import Category
from .client import HashClient
from .definitions import CategoryNotFoundError

__all__ = ["Category", "CategoryNotFoundError", "HashClient"]
