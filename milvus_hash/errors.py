"""Typed errors of milvus-hash.

Every error carries ``retryable``: ``True`` when the same call may succeed later unchanged (the
Milvus server was unreachable, timed out or is overloaded), ``False`` when the call itself is wrong
(bad input, an unknown collection, codes from another encoder) and retrying cannot help.
"""

from __future__ import annotations


class MilvusHashError(Exception):
    """Base class of all milvus-hash errors."""

    retryable: bool = False


class InvalidInputError(MilvusHashError, ValueError):
    """An argument has the wrong type, dtype, shape or value. Retrying cannot help."""


class CollectionNotFoundError(MilvusHashError, LookupError):
    """The named collection does not exist in this Milvus. Retrying cannot help."""


class NotAHashCollectionError(MilvusHashError):
    """The collection exists but was not created by milvus-hash (no encoder record)."""


class EncoderMismatchError(MilvusHashError):
    """Codes from one encoder were offered to a collection written by another."""


class MilvusUnavailableError(MilvusHashError, ConnectionError):
    """Milvus could not be reached or did not answer in time. A retry may help."""

    retryable = True


class FileHeldError(MilvusUnavailableError):
    """A Milvus Lite file is held by another program (Milvus Lite serves one program a file at a
    time). ``pid`` is that program's process id when known. A retry may help once it has finished."""

    def __init__(self, message: str, *, pid: int | None = None):
        super().__init__(message)
        self.pid = pid


class StorageUnavailableError(MilvusHashError, ConnectionError):
    """The object storage of a bulk import's stage (S3, MinIO) could not be reached or failed.

    ``retryable`` is ``True`` unless the storage's answer says a retry cannot help.
    """

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class MilvusServerError(MilvusHashError):
    """Milvus answered with an error that is not one of the above.

    ``retryable`` is set from the server's answer (rate limits and not-ready states are retryable).
    """

    def __init__(self, message: str, *, retryable: bool = False, code: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.code = code


def expected(argument: str, what: str, received: object) -> InvalidInputError:
    """Build the standard message: which argument, what was expected, what was received."""
    return InvalidInputError(f"{argument}: expected {what}, received {received}")


class WeightsUnavailableError(MilvusHashError):
    """Pretrained weights could not be obtained (a download failed with nothing in the local cache,
    or the package that carries them is not installed). The message says how to get them.

    Not retryable: running the same command again does not fix it; the step the message names does
    (exit code 1 on the command line).
    """

    retryable = False
