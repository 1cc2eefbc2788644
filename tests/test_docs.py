"""Every code example in the README and in docs/ runs, as written, in the order a reader meets it.

Each document runs in a fresh working directory laid out as its examples assume: ``images/`` (real
images, scikit-learn's 1,797 handwritten digits as 28x28 PNGs in one sub-folder per label, minus six
held out), ``examples/`` (five held-out pictures of a 3), ``query.png`` (another 3) and the
project's ``configs/``, as in a checkout. ``bash``
blocks run with the project's ``milvus-hash`` first on ``PATH`` and no ``MILVUS_URI``, so Milvus is
the embedded default, ``./milvus_hash.db``; ``python`` blocks run with the project's Python, each
block its own script, as a reader would run it. A block whose info string says
``no-run: REASON`` is shown to readers and not run here; the reason is required. Blocks of output
(``text``) are not code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"bash", "sh", "python"}
NOT_CODE = {"text", "console", "yaml", "json", ""}
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
#: Documents whose examples start a real Milvus server (the server tier).
SERVER = {"deployment.md"}


def blocks(path: Path) -> list[tuple[str, str, str, int]]:
    """``(language, options, code, line)`` of each fenced block of ``path``."""
    text = path.read_text()
    out = []
    for m in FENCE.finditer(text):
        info = m.group(1).strip()
        lang, _, options = info.partition(" ")
        out.append((lang, options.strip(), m.group(2), text.count("\n", 0, m.start()) + 1))
    return out


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """The layout every document's examples assume (see the module doc); copied per document."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("docs-images")
    d = load_digits()
    threes = np.flatnonzero(d.target == 3)
    held = set(threes[-6:].tolist())
    (root / "examples").mkdir()
    for i, (img, label) in enumerate(zip(d.images, d.target)):
        pic = Image.fromarray((img * 16).clip(0, 255).astype(np.uint8)).resize((28, 28), Image.BILINEAR)
        if i in held:
            pic.save(root / "examples" / f"three-{i:04d}.png" if i != threes[-1] else root / "query.png")
            continue
        (root / "images" / str(label)).mkdir(parents=True, exist_ok=True)
        pic.save(root / "images" / str(label) / f"{i:04d}.png")
    return root


def test_every_block_is_runnable_or_says_why():
    runnable = {path.name: 0 for path in DOCUMENTS}
    for path in DOCUMENTS:
        for lang, opts, _, line in blocks(path):
            runnable[path.name] += lang in RUN and "no-run" not in opts
            where = f"{path.relative_to(ROOT)}:{line}"
            assert lang in RUN | NOT_CODE, f"{where}: unknown block language {lang!r}"
            if opts:
                assert re.fullmatch(r"no-run: \S.{9,}", opts), f"{where}: expected 'no-run: <reason>', got {opts!r}"
                assert lang in RUN, f"{where}: only code blocks take no-run"
    assert runnable["README.md"] >= 3 and sum(runnable.values()) >= 15, runnable


def _run(lang: str, code: str, cwd: Path, where: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MILVUS_URI", "MILVUS_TOKEN")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if lang == "python":
        script = cwd / f"example-{where.replace('/', '_').replace(':', '_')}.py"
        script.write_text(code)
        command = [sys.executable, script.name]
    else:
        command = ["bash", "-euo", "pipefail", "-c", code]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{where} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def _runnable(path: Path) -> list[tuple[str, str, int]]:
    return [(lang, code, line) for lang, opts, code, line in blocks(path) if lang in RUN and "no-run" not in opts]


def _params():
    for path in DOCUMENTS:
        if _runnable(path):
            marks = [pytest.mark.lite] + ([pytest.mark.server] if path.name in SERVER else [])
            yield pytest.param(path, marks=marks, id=str(path.relative_to(ROOT)))


@pytest.mark.parametrize("path", list(_params()))
def test_examples_run_as_written(path, image_folder, tmp_path):
    import shutil

    work = tmp_path / "work"
    shutil.copytree(image_folder, work)
    shutil.copytree(ROOT / "configs", work / "configs")
    for lang, code, line in _runnable(path):
        _run(lang, code, work, f"{path.relative_to(ROOT)}:{line}")
