"""How long the command line takes to answer what needs no Milvus and no model: ``--help``, a
command's help, a usage error, and ``info`` on a Lite file that does not exist; beside, in the same
run, the same commands of an earlier revision (``--before``, default the commit before lazy
imports) and the bare costs: starting Python, importing pymilvus, importing torch.

Each command runs ``--repeat`` times from a clean process (``python -c "...main()"`` from the
tree, so both revisions start alike); the median and the worst are printed.

Usage::

    .venv/bin/python benchmarks/cli_startup.py
    .venv/bin/python benchmarks/cli_startup.py --before 4c6f714 --repeat 7
    .venv/bin/python benchmarks/cli_startup.py --first-hour-only   # the commands on a real store only
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "milvus-hash --help": ["--help"],
    "milvus-hash ingest --help": ["ingest", "--help"],
    "usage error (search -k x)": ["search", "-k", "x"],
    "info on a missing Lite file": ["info", "--uri", "{missing}"],
}
BARE = {"python -c pass": "pass", "import pymilvus": "import pymilvus", "import torch": "import torch"}
#: The first hour's commands on a real Milvus Lite store of 300 digit pictures (goals: usage errors and
#: "not found" < 1 s; an image command < 3 s with the pixels backbone, < 5 s with EfficientNet-Lite0).
FIRST_HOUR = {
    "usage: ingest a folder that does not exist": ["ingest", "{tmp}/nope", "--collection", "d", "--encoder", "{pix}"],
    "usage: define --examples without --library": ["category", "define", "x", "--collection", "d", "--uri", "{db}",
                                                    "--examples", "{examples}"],
    "not found: search a collection typo": ["search", "--collection", "dd", "--id", "1", "--uri", "{db}"],
    "not found: members of no category": ["category", "members", "nope", "--collection", "d", "--uri", "{db}"],
    "baseline: info (Milvus Lite's start)": ["info", "--uri", "{db}"],
    "search --id": ["search", "--collection", "d", "--id", "{id}", "--uri", "{db}"],
    "search --image (pixels)": ["search", "--collection", "d", "--image", "{query}", "--encoder", "{pix}",
                                "--uri", "{db}"],
    "category define --examples (pixels)": ["category", "define", "t", "--collection", "d", "--examples",
                                            "{examples}", "--library", "{pix}", "--uri", "{db}", "--replace"],
    "refused: define a name defined already": ["category", "define", "t", "--collection", "d", "--examples",
                                                "{examples}", "--library", "{pix}", "--uri", "{db}"],
    "category search --image (pixels)": ["category", "search", "t", "--collection", "d", "--image", "{query}",
                                         "--library", "{pix}", "--uri", "{db}"],
    "search --image (EfficientNet-Lite0)": ["search", "--collection", "e", "--image", "{query}", "--encoder",
                                            "{eff}", "--uri", "{db}"],
}


def first_hour(run: list[str], repeat: int) -> None:
    """Set up a real store (digits as PNGs, a pixels and an EfficientNet-Lite0 library) and time FIRST_HOUR."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        d = load_digits()
        for i, (img, lab) in enumerate(zip(d.images[:300], d.target[:300])):
            (t / "img" / str(lab)).mkdir(parents=True, exist_ok=True)
            Image.fromarray((img * 16).clip(0, 255).astype(np.uint8)).resize((28, 28)).save(
                t / "img" / str(lab) / f"{i:04d}.png")
        (t / "ex").mkdir()
        for p in sorted((t / "img" / "3").glob("*.png"))[:5]:
            shutil.copy(p, t / "ex" / p.name)
        query = sorted((t / "img" / "7").glob("*.png"))[0]
        db = t / "f.db"
        setup = [
            ["hypertrain", str(t / "img"), "--backbone", "pixels", "--rounds", "12", "--out", str(t / "pix.npz"),
             "--quiet"],
            ["hypertrain", str(t / "img"), "--rounds", "12", "--out", str(t / "eff.npz"), "--quiet"],
            ["ingest", str(t / "img"), "--collection", "d", "--encoder", str(t / "pix.npz"), "--uri", str(db), "--quiet"],
            ["ingest", str(t / "img"), "--collection", "e", "--encoder", str(t / "eff.npz"), "--uri", str(db), "--quiet"],
        ]
        for cmd in setup:
            done = subprocess.run(run + cmd, cwd=ROOT, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"set-up failed: milvus-hash {' '.join(cmd)}\n{done.stdout}{done.stderr}")
        out = subprocess.run(run + ["search", "--collection", "d", "--image", str(query), "--encoder",
                                    str(t / "pix.npz"), "--uri", str(db), "--json"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        import json

        some_id = json.loads(out)["hits"][0]["id"]
        values = {"tmp": tmp, "db": db, "pix": t / "pix.npz", "eff": t / "eff.npz", "examples": t / "ex",
                  "query": query, "id": some_id}
        print(f"\nfirst hour, on Milvus Lite ({len(d.images[:300])} pictures), seconds median / worst of {repeat}:")
        for name, cli_args in FIRST_HOUR.items():
            med, worst, code = timed(run + [str(a).format(**values) for a in cli_args], ROOT, repeat)
            print(f"  {name:42s} {med:6.2f} / {worst:5.2f}   exit {code}", flush=True)


def timed(args: list[str], cwd: Path, repeat: int) -> tuple[float, float, int]:
    times, code = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        code = subprocess.run(args, cwd=cwd, capture_output=True).returncode
        times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times), code


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="4c6f714", help="git revision to compare with")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--first-hour-only", action="store_true", help="only the first hour's commands on a real store")
    args = ap.parse_args(argv)
    run = [sys.executable, "-c", "from ingestion.cli.main import main; main()"]
    if args.first_hour_only:
        first_hour(run, args.repeat)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp)
        archive = subprocess.run(["git", "archive", args.before], cwd=ROOT, capture_output=True, check=True).stdout
        before = before / "tree"
        before.mkdir()
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        missing = Path(tmp) / "missing" / "none.db"
        print(f"{'seconds, median / worst of ' + str(args.repeat):34s} {'now':>15s} {args.before:>15s}")
        for name, cli_args in COMMANDS.items():
            cli_args = [a.format(missing=missing) for a in cli_args]
            now = timed(run + cli_args, ROOT, args.repeat)
            created_now = missing.exists()
            shutil.rmtree(missing.parent, ignore_errors=True)
            old = timed(run + cli_args, before, args.repeat)
            created_old = missing.exists()
            shutil.rmtree(missing.parent, ignore_errors=True)
            note = f"   created the file: {'yes' if created_now else 'no'} / {'yes' if created_old else 'no'}" \
                if "{missing}" in " ".join(COMMANDS[name]) else ""
            print(f"{name:34s} {now[0]:7.2f} / {now[1]:4.2f} {old[0]:7.2f} / {old[1]:4.2f}   exit {now[2]} / {old[2]}"
                  + note, flush=True)
    for name, code in BARE.items():
        med, worst, _ = timed([sys.executable, "-c", code], ROOT, args.repeat)
        print(f"{name:34s} {med:7.2f} / {worst:4.2f}", flush=True)
    first_hour(run, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
