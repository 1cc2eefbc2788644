"""The architecture as the folders show it: the library stands alone, the public API is exported from
``milvus_hash``, and old import paths are gone."""

from __future__ import annotations

import ast
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "milvus_hash"

# Every milvus_hash module imported in a process where ``import ingestion`` fails; prints their names.
_IMPORT_ALL = """
import importlib, json, pkgutil, sys
sys.modules["ingestion"] = None          # any import of ingestion raises ImportError
import milvus_hash
names = ["milvus_hash"] + sorted(m.name for m in pkgutil.walk_packages(milvus_hash.__path__, "milvus_hash."))
for name in names:
    importlib.import_module(name)
for name in milvus_hash.__all__:
    getattr(milvus_hash, name)
print(json.dumps({"modules": names, "ingestion": [m for m, v in sys.modules.items() if m.split(".")[0] == "ingestion" and v is not None]}))
"""


def test_every_library_module_imports_without_ingestion():
    done = subprocess.run([sys.executable, "-c", _IMPORT_ALL], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {"milvus_hash"} | {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                                  for p in LIBRARY.rglob("*.py")}
    assert set(result["modules"]) == expected
    assert result["ingestion"] == []


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_library_file_names_ingestion():
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imported_modules(p) if m.split(".")[0] == "ingestion")
                 for p in LIBRARY.rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_public_api_is_exported_from_the_package():
    import milvus_hash
    from milvus_hash.categories import HashClient
    from milvus_hash.codes import pack_bits
    from milvus_hash.encoders.ugh import UGHLibrary
    from milvus_hash.store import HashStore

    assert milvus_hash.HashClient is HashClient
    assert milvus_hash.HashStore is HashStore
    assert milvus_hash.UGHLibrary is UGHLibrary
    assert milvus_hash.pack_bits is pack_bits
    for name in ("HashStore", "HashClient", "UGHLibrary", "UTHEncoder", "LSHHasher", "ITQHasher", "CCACoder",
                 "L1BitSelector", "load_encoder", "get_backbone", "pack_bits", "unpack_bits", "select_bits",
                 "hamming_topk", "hamming_distances", "hamming_range", "EncoderSpec", "InvalidInputError"):
        assert name in milvus_hash.__all__ and name in dir(milvus_hash)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        milvus_hash.nope  # noqa: B018


def test_import_is_cheap():
    """``import milvus_hash`` loads neither torch nor pymilvus until a name needs them."""
    code = "import sys, milvus_hash; print(sorted({'torch', 'pymilvus', 'sklearn'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("old", ["milvus_hash.client", "milvus_hash.category", "milvus_hash.definitions",
                                 "milvus_hash.encoder", "milvus_hash.lsh", "milvus_hash.itq", "milvus_hash.ugh",
                                 "milvus_hash.uth", "milvus_hash.records", "milvus_hash.local_server",
                                 "milvus_hash._milvus", "milvus_hash._validation", "ingestion.backbones",
                                 "ingestion.small_cnn", "ingestion.features_file", "ingestion.cli_options",
                                 "ingestion.cli_ingest"])
def test_old_import_paths_are_gone(old):
    """Moved modules are removed, not aliased."""
    with pytest.raises(ModuleNotFoundError):
        __import__(old)


def _near(a: str, b: str) -> bool:
    """Two names that differ by one letter (an insertion, deletion or substitution)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def test_no_two_module_names_differ_by_a_letter():
    """Module and folder names are told apart at a glance (the papers' acronyms ugh / uth excepted)."""
    names = {p.stem for root in (LIBRARY, ROOT / "ingestion") for p in root.rglob("*.py") if p.stem != "__init__"}
    names |= {p.name for root in (LIBRARY, ROOT / "ingestion") for p in root.rglob("*") if p.is_dir()
              and p.name != "__pycache__"}
    names -= {"ugh", "uth"}
    assert [(a, b) for a, b in itertools.combinations(sorted(names), 2) if _near(a, b)] == []


@pytest.mark.unit
def test_the_license_is_an_spdx_string_so_installs_print_no_setuptools_warning():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "Apache-2.0"  # a TOML table warns on every install (setuptools >= 77)
    assert any(r.startswith("setuptools>=77") for r in meta["build-system"]["requires"])
