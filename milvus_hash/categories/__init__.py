"""Stage 4, few-shot categories on a store of UGH library codes.

- :mod:`.client`: :class:`HashClient`, categories defined from a few examples, their queries and
  membership;
- :mod:`.category`: :class:`Category`, a learned category code and its calibrated membership;
- :mod:`.definitions`: definitions persisted in Milvus, atomically redefined;
- :mod:`.materialized`: every item's category code in a collection of its own, kept exact.
"""

from .category import Category
from .client import HashClient
from .definitions import CategoryNotFoundError
from .materialized import StaleCategoryWarning

__all__ = ["Category", "CategoryNotFoundError", "HashClient", "StaleCategoryWarning"]
