"""The ``milvus-hash`` command line: one module a group of commands.

- :mod:`.main`: the ``milvus-hash`` group, ``demo`` and ``info``;
- :mod:`.options`: options shared by commands (Milvus URI, backbone), exit codes, error handling;
- :mod:`.features`: ``features`` and ``hypertrain``;
- :mod:`.ingest`: ``ingest`` and ``search``;
- :mod:`.uth`: ``train-uth``;
- :mod:`.category`: ``category define|list|describe|drop|materialize|search``;
- :mod:`.eval`: ``eval``.
"""

from .main import cli, main

__all__ = ["cli", "main"]
