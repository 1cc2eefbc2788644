"""How long the command line takes to answer what needs no Milvus and no model: ``--help``, a
command's help, a usage error, and ``info`` on a Lite file that does not exist; beside, in the same
run, the same commands of an earlier revision (``--before``, default the commit before lazy
imports) and the bare costs: starting Python, importing pymilvus, importing torch.

Each command runs ``--repeat`` times from a clean process (``python -c "...main()"`` from the
tree, so both revisions start alike); the median and the worst are printed.

Usage::

    .venv/bin/python benchmarks/cli_startup.py
    .venv/bin/python benchmarks/cli_startup.py --before 4c6f714 --repeat 7
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
    args = ap.parse_args(argv)
    run = [sys.executable, "-c", "from ingestion.cli.main import main; main()"]
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
