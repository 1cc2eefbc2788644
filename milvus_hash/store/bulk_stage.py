"""Where a bulk import's files wait for the server: a local directory or a prefix in a bucket.

Milvus imports files from its own storage. A server whose storage is local (the ``milvus``
package's ``milvus-server``, a standalone with ``common.storageType: local``) reads any absolute
path on its machine: :class:`DirectoryStage`. A server on MinIO or S3 (the Docker Compose file, a
cluster) reads object keys in the bucket it stores its data in (``minio.bucketName``):
:class:`BucketStage` writes the files in a temporary directory, uploads them there with the
``minio`` client (``pip install 'milvus-hash[bulk]'``) and removes them after the import.

:func:`open_stage` takes what a user writes: a path, or ``s3://BUCKET/PREFIX``, whose endpoint and
credentials come from the environment the AWS tools read (``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``). Credentials never appear in a message.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from ..errors import StorageUnavailableError, expected
from . import bulk

#: Environment variables read for the endpoint of an ``s3://`` stage, first found wins.
ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
AWS_ENDPOINT = "https://s3.amazonaws.com"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


#: Beside a group's files once the server has its import: ``{"collection": ..., "task": ...}``.
MARKER = "import.json"


class Staged:
    """The file groups of one :meth:`files` call, and whether to keep them when it ends.

    They are removed when the call ends, except after :meth:`submitted` and before :meth:`finished`:
    an import the server has and that has neither failed nor shown its rows goes on in the server
    if this process is interrupted or gives up. :meth:`submitted` writes a marker
    (:data:`MARKER`: the collection and the server's task) beside the group's files; the next
    :meth:`milvus_hash.store.HashStore.bulk_import` into that collection finds it
    (:meth:`leftovers`), waits for that import's rows and removes the files, instead of importing
    them a second time.
    """

    def __init__(self, stage, groups: list[list[str]]):
        self.stage = stage
        self.groups = groups
        self.keep = False

    def submitted(self, files: list[str], collection: str, task: int) -> None:
        self.keep = True
        self.stage.mark(files, {"collection": collection, "task": int(task)})

    def finished(self) -> None:
        self.keep = False


class DirectoryStage:
    """A directory the server reads as its storage (a server with local storage)."""

    def __init__(self, path):
        self.path = Path(path).expanduser().resolve()

    def __str__(self) -> str:
        return str(self.path)

    def check(self) -> "DirectoryStage":
        """Fail now, in one line, if this process cannot write here; returns ``self``."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            ok = os.access(self.path, os.W_OK | os.X_OK)
        except OSError as exc:
            ok, why = False, f"{type(exc).__name__}: {exc.strerror or exc}"
        else:
            why = "not writable"
        if not ok:
            raise expected("stage", "a directory this process can write and the Milvus server reads",
                           f"{self.path} ({why})")
        return self

    @contextlib.contextmanager
    def files(self, columns: dict[str, object]):
        """Write ``columns`` (:func:`bulk.write_files`) here; yields them as :class:`Staged`, which
        says when they are removed."""
        where, groups = bulk.write_files(columns, self.path)
        staged = Staged(self, groups)
        try:
            yield staged
        finally:
            if not staged.keep:
                bulk.remove(where)

    def hint(self) -> str:
        return "the server must read this directory as its storage (a server with local storage)"

    # the groups an interrupted or killed run left (see Staged)
    def mark(self, files: list[str], record: dict) -> None:
        (Path(files[0]).parent / MARKER).write_text(json.dumps(record))

    def leftovers(self, collection: str) -> list[tuple[list[str], int]]:
        """``(files, task)`` of each group left staged here by an import into ``collection``."""
        out = []
        for marker in sorted(self.path.glob(f"milvus-hash-*/*/{MARKER}")):
            record = _record(marker.read_text())
            if record and record["collection"] == collection:
                out.append((sorted(str(f) for f in marker.parent.glob("*.npy")), record["task"]))
        return out

    def read_ids(self, files: list[str]) -> np.ndarray:
        return np.load(next(f for f in files if f.endswith("/id.npy")), allow_pickle=False)

    def discard(self, files: list[str]) -> None:
        folders = {Path(f).parent for f in files}
        for f in [*files, *(str(d / MARKER) for d in folders)]:
            Path(f).unlink(missing_ok=True)
        for folder in folders:  # the group's folder, then its run's, once empty
            for empty in (folder, folder.parent):
                with contextlib.suppress(OSError):
                    empty.rmdir()


class BucketStage:
    """A prefix in the S3 / MinIO bucket the Milvus server stores its data in.

    Args:
        url: ``s3://BUCKET`` or ``s3://BUCKET/PREFIX``; BUCKET must be the server's own bucket
            (``minio.bucketName`` in its ``milvus.yaml``; ``a-bucket`` in the Docker Compose file).
        endpoint: ``http(s)://host:port`` of the object storage; default ``AWS_ENDPOINT_URL_S3`` or
            ``AWS_ENDPOINT_URL`` from the environment, else AWS S3.
        access_key, secret_key, session_token, region: default from ``AWS_ACCESS_KEY_ID``,
            ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``.
        timeout: seconds to wait for the storage to connect and to answer a request.
    """

    def __init__(self, url: str, *, endpoint: str | None = None, access_key: str | None = None,
                 secret_key: str | None = None, session_token: str | None = None, region: str | None = None,
                 timeout: float = 30.0):
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise expected("stage", "a directory or s3://BUCKET/PREFIX", repr(url))
        if not _BUCKET.fullmatch(parts.netloc) or ".." in parts.netloc:
            raise expected("stage", "s3://BUCKET/PREFIX with a bucket name of 3-63 lowercase letters, digits, "
                                    "'.' and '-'", repr(url))
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        endpoint = endpoint or next((os.environ[k] for k in ENDPOINT_ENV if os.environ.get(k)), AWS_ENDPOINT)
        ep = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if ep.scheme not in ("http", "https") or not ep.hostname or ep.path.strip("/") or ep.username:
            raise expected("endpoint", "the object storage as http(s)://host[:port] (no path, no credentials)",
                           repr(f"{ep.scheme}://{ep.hostname}{ep.path}"))
        self.endpoint = f"{ep.scheme}://{ep.netloc}"
        self._host, self._secure = ep.netloc, ep.scheme == "https"
        self._access_key = access_key if access_key is not None else os.environ.get("AWS_ACCESS_KEY_ID")
        self._secret_key = secret_key if secret_key is not None else os.environ.get("AWS_SECRET_ACCESS_KEY")
        self._session_token = session_token if session_token is not None else os.environ.get("AWS_SESSION_TOKEN")
        self._region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self.timeout = float(timeout)
        self._client = None

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/") + f" at {self.endpoint}"

    def __repr__(self) -> str:  # never the credentials
        return f"BucketStage('s3://{self.bucket}/{self.prefix}', endpoint={self.endpoint!r})"

    def check(self) -> "BucketStage":
        """Fail now, in one line, if the bucket is missing, refused or unreachable; returns ``self``."""
        with self._errors("checking the bucket"):
            exists = self.client().bucket_exists(self.bucket)
        if not exists:
            raise expected("stage", f"an existing bucket at {self.endpoint} (the Milvus server's own bucket)",
                           f"s3://{self.bucket}: no such bucket")
        return self

    def hint(self) -> str:
        return (f"the server reads them from the bucket it stores its data in: is {self.bucket!r} its "
                f"minio.bucketName, and {self.endpoint} its storage?")

    def client(self):
        if self._client is None:
            try:
                import urllib3
                from minio import Minio
            except ImportError:
                raise expected("stage", "the minio package for an s3:// stage (pip install 'milvus-hash[bulk]')",
                               f"s3://{self.bucket}/{self.prefix} without it") from None
            http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=min(10.0, self.timeout), read=self.timeout),
                                       retries=urllib3.Retry(total=3, backoff_factor=0.5,
                                                             status_forcelist=(500, 502, 503, 504)))
            self._client = Minio(self._host, access_key=self._access_key, secret_key=self._secret_key,
                                 session_token=self._session_token, secure=self._secure, region=self._region,
                                 http_client=http)
        return self._client

    @contextlib.contextmanager
    def _errors(self, what: str):
        """Storage errors as milvus-hash errors: a refusal is the caller's (not retryable), an
        unreachable or failing storage is retryable."""
        import urllib3
        from minio.error import MinioException, S3Error

        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        try:
            yield
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                raise expected("stage", f"an existing bucket at {self.endpoint} (the Milvus server's own bucket)",
                               f"{where}: no such bucket") from None
            if exc.code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                            "InvalidToken", "AllAccessDisabled"):
                raise expected("stage", "credentials that may write to the bucket (AWS_ACCESS_KEY_ID and "
                                        "AWS_SECRET_ACCESS_KEY)", f"{where}: {exc.code} while {what}") from None
            raise StorageUnavailableError(f"object storage {self.endpoint}: {exc.code} while {what} {where}",
                                          retryable=exc.code in ("SlowDown", "InternalError", "ServiceUnavailable",
                                                                 "RequestTimeout")) from None
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageUnavailableError(f"object storage {self.endpoint} did not answer while {what} {where}: "
                                          f"{type(exc).__name__}") from None

    @contextlib.contextmanager
    def files(self, columns: dict[str, object]):
        """Write ``columns`` in a temporary directory, upload them under the prefix; yields the object
        keys to import (relative to the bucket, as Milvus reads them) as :class:`Staged`, which says
        when the objects are removed."""
        client = self.client()
        with tempfile.TemporaryDirectory(prefix="milvus-hash-stage-") as tmp:
            where, groups = bulk.write_files(columns, tmp)
            keys, uploaded = [], []
            staged = Staged(self, keys)
            try:  # the bucket was checked by the caller (HashStore.bulk_import)
                for group in groups:
                    names = []
                    for path in group:
                        key = "/".join(p for p in (self.prefix, Path(path).relative_to(tmp).as_posix()) if p)
                        with self._errors("uploading to"):
                            client.fput_object(self.bucket, key, path)
                        uploaded.append(key)
                        names.append(key)
                    keys.append(names)
                bulk.remove(where)  # uploaded: the local copies are not needed during the import
                yield staged
            finally:
                if not staged.keep:
                    self.discard(uploaded)  # and the markers

    # the groups an interrupted or killed run left (see Staged)
    def mark(self, files: list[str], record: dict) -> None:
        data = json.dumps(record).encode()
        key = f"{files[0].rsplit('/', 1)[0]}/{MARKER}"
        with self._errors("marking an import in"):
            self.client().put_object(self.bucket, key, io.BytesIO(data), len(data))

    def leftovers(self, collection: str) -> list[tuple[list[str], int]]:
        """``(files, task)`` of each group left staged here by an import into ``collection``."""
        out = []
        with self._errors("looking for earlier imports in"):  # only milvus-hash's: the bucket holds Milvus's data
            names = [o.object_name for o in self.client().list_objects(
                self.bucket, prefix=f"{self.prefix}/milvus-hash-".lstrip("/"), recursive=True)]
        for marker in sorted(n for n in names if n.endswith(f"/{MARKER}")):
            record = _record(self._read(marker).decode())
            if record and record["collection"] == collection:
                folder = marker.rsplit("/", 1)[0]
                out.append((sorted(n for n in names if n.startswith(f"{folder}/") and n.endswith(".npy")),
                            record["task"]))
        return out

    def read_ids(self, files: list[str]) -> np.ndarray:
        return np.load(io.BytesIO(self._read(next(f for f in files if f.endswith("/id.npy")))), allow_pickle=False)

    def _read(self, key: str) -> bytes:
        with self._errors("reading earlier files in"):
            answer = self.client().get_object(self.bucket, key)
            try:
                return answer.read()
            finally:
                answer.close()
                answer.release_conn()

    def discard(self, files: list[str]) -> None:
        self._remove([*files, *{f"{f.rsplit('/', 1)[0]}/{MARKER}" for f in files}])

    def _remove(self, keys: list[str]) -> None:
        if not keys:
            return
        from minio.deleteobjects import DeleteObject

        with contextlib.suppress(Exception):  # best effort: a failed clean-up must not hide the import's result
            for _ in self.client().remove_objects(self.bucket, [DeleteObject(k) for k in keys]):
                pass


def _record(text: str) -> dict | None:
    """A marker's record, or None if it is not one (a file of someone else's, cut short)."""
    try:
        record = json.loads(text)
    except ValueError:
        return None
    ok = isinstance(record, dict) and isinstance(record.get("collection"), str) and \
        isinstance(record.get("task"), int)
    return record if ok else None


def open_stage(stage, **options):
    """A stage from what a user gives: a :class:`DirectoryStage` / :class:`BucketStage` as is, an
    ``s3://`` URL (``options`` as :class:`BucketStage` takes them), or a path."""
    if isinstance(stage, (DirectoryStage, BucketStage)):
        return stage
    if isinstance(stage, bytes):
        stage = os.fsdecode(stage)
    if isinstance(stage, str) and "://" in stage:
        return BucketStage(stage, **options)
    if isinstance(stage, str) or hasattr(stage, "__fspath__"):
        if options:
            raise expected("stage", "an s3:// URL with endpoint or credential options", repr(os.fspath(stage)))
        return DirectoryStage(stage)
    raise expected("stage", "a directory the Milvus server reads, or s3://BUCKET/PREFIX", repr(stage))


__all__ = ["AWS_ENDPOINT", "BucketStage", "DirectoryStage", "ENDPOINT_ENV", "MARKER", "Staged", "open_stage"]
