"""Bulk import: rows written as the NumPy files of pymilvus's ``BulkWriter``, imported by the server.

The files are the layout pymilvus's ``LocalBulkWriter(file_type=BulkFileType.NUMPY)`` writes (one
directory a batch, one ``<field>.npy`` a field: ``int64`` ids, ``uint8 (n, n_bits // 8)`` codes,
strings, JSON as strings), written here column by column: the BulkWriter checks every row in
Python (41 us a row here, which made the bulk path 0.2x the speed of an upsert), and the store has
checked the rows already. ``tests/test_bulk.py`` checks that the files equal the BulkWriter's.

Milvus imports files from its own storage: where they wait for it (a directory, or a prefix in
the server's bucket, uploaded) is :mod:`.bulk_stage`'s. Milvus Lite has no import.

The import is asked through gRPC (pymilvus's ``utility.do_bulk_insert``: Milvus 2.3 to 2.6), its
state is polled until it completes, and the rows are counted once the server shows them (on the
2.3.5 server they appear a few seconds after the import says it is complete, when the query node
has loaded the new segments).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from ..errors import MilvusServerError, expected

#: Rows a file group (one import) holds at most.
ROWS_PER_GROUP = 1_000_000


def write_files(columns: dict[str, object], stage) -> tuple[Path, list[list[str]]]:
    """Write checked rows as NumPy files in a new directory under ``stage``.

    Args:
        columns: field name to values: ``id`` ``int64 (n,)``, ``code`` ``uint8 (n, n_bits // 8)``,
            ``source`` and ``label`` strings, ``metadata`` dicts (every field of the schema).
    Returns the directory and the file groups (one import each, at most :data:`ROWS_PER_GROUP` rows).
    """
    stage = Path(stage).resolve()
    where = stage / f"milvus-hash-{uuid.uuid4().hex[:12]}"
    n = len(columns["id"])
    groups = []
    for g, start in enumerate(range(0, n, ROWS_PER_GROUP)):
        stop = min(n, start + ROWS_PER_GROUP)
        folder = where / str(g + 1)
        try:
            folder.mkdir(parents=True)
        except OSError as exc:
            raise expected("stage", "a directory this process can write and the Milvus server reads",
                           f"{stage} ({type(exc).__name__}: {exc.strerror or exc})") from None
        files = []
        for name, values in columns.items():
            path = folder / f"{name}.npy"
            np.save(path, _array(name, values[start:stop]))
            files.append(str(path))
        groups.append(files)
    return where, groups


def _array(name: str, values) -> np.ndarray:
    if name == "id":
        return np.asarray(values, dtype=np.int64)
    if name == "code":
        return np.ascontiguousarray(values, dtype=np.uint8)
    if name == "metadata":
        return np.array([json.dumps(v) for v in values], dtype=str)
    return np.array(list(values), dtype=str)


def run_import(alias: str, collection: str, files: list[str], *, timeout: float, progress=None,
               hint: str = "", submitted=None) -> int:
    """Import one group of files into ``collection``; wait for it; returns the rows it imported.
    ``hint`` ends the message of a failed import (where the server should have found the files);
    ``submitted(task)`` is called once the server has the import."""
    from pymilvus import BulkInsertState, utility

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task = utility.do_bulk_insert(collection, files=files, using=alias)
        if submitted is not None:
            submitted(task)
        deadline = time.monotonic() + timeout
        while True:
            state = utility.get_bulk_insert_state(task, using=alias)
            if progress is not None:
                progress(state.infos.get(BulkInsertState.IMPORT_PROGRESS), state.row_count)
            if state.state == BulkInsertState.ImportCompleted:
                return int(state.row_count)
            if state.state in (BulkInsertState.ImportFailed, BulkInsertState.ImportFailedAndCleaned):
                raise MilvusServerError(f"bulk import into {collection!r} failed: {state.failed_reason} "
                                        f"(files {files[0]}, ...{'; ' + hint if hint else ''})", retryable=False)
            if time.monotonic() > deadline:
                raise MilvusServerError(f"bulk import into {collection!r} did not finish in {timeout:g} s "
                                        f"(task {task}, state {state.state_name})", retryable=True)
            time.sleep(0.5)


def wait_for_task(alias: str, task: int, *, timeout: float) -> int | None:
    """Wait for the server's import ``task`` to end; returns the rows it imported, or None if it
    failed (or the server no longer knows it)."""
    from pymilvus import BulkInsertState, utility

    running = (BulkInsertState.ImportPending, BulkInsertState.ImportStarted, BulkInsertState.ImportPersisted)
    deadline = time.monotonic() + timeout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while (state := utility.get_bulk_insert_state(task, using=alias)).state in running:
            if time.monotonic() > deadline:
                raise MilvusServerError(f"an earlier bulk import (task {task}) still runs after {timeout:g} s",
                                        retryable=True)
            time.sleep(0.5)
    return int(state.row_count) if state.state == BulkInsertState.ImportCompleted else None


def remove(where: Path) -> None:
    shutil.rmtree(where, ignore_errors=True)


__all__ = ["ROWS_PER_GROUP", "remove", "run_import", "wait_for_task", "write_files"]
