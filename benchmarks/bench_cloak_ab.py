"""This tree's cloak against an earlier commit's, timed in one run.

    python -m benchmarks.bench_cloak_ab --baseline REV [--mode mid] [--rounds 3] [--runs 2]

Why: this machine's speed drifts by ±30 % over minutes (a shared VM), so two benchmark runs
taken at different times cannot be compared. Here fresh processes of the baseline (a
temporary ``git worktree`` of REV) and of this tree alternate, each timing the same 12 MP
photo end to end (decode, detect, cloak, encode) ``--runs`` times; the table gives both
medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ROOT, SHARED, report

_TIMER = """
import json, sys, time
from benchmarks.bench_cloak import synthetic_photo
from fawkes_engine.cloak import CloakOptions
from fawkes_engine.photo_io import decode_photo, encode_photo
from fawkes_engine.pipeline import PhotoCloaker
pc = PhotoCloaker(CloakOptions.of(mode=sys.argv[1]))
data = synthetic_photo(12)
out = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    r = pc.cloak([decode_photo(data)])[0]
    encode_photo(r.photo)
    out.append(time.perf_counter() - t)
print(json.dumps(out))
"""


def _time(tree: Path, mode: str, runs: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "FAWKES_SHARED": str(SHARED.parent)}
    out = subprocess.run([sys.executable, "-c", _TIMER, mode, str(runs)], cwd=tree, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="git revision to compare with")
    ap.add_argument("--mode", default="mid")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=2, help="timed cloaks per process")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(base), args.baseline], check=True, capture_output=True
        )
        try:
            times: dict[str, list[float]] = {"baseline": [], "this tree": []}
            for _ in range(args.rounds):
                times["baseline"] += _time(base, args.mode, args.runs)
                times["this tree"] += _time(ROOT, args.mode, args.runs)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        {
            "what": f"12 MP photo, 1 face, mode {args.mode}: {k}" + (f" ({args.baseline})" if k == "baseline" else ""),
            "value": med[k],
            "unit": "s/photo (median)",
            "runs": len(v),
        }
        for k, v in times.items()
    ]
    rows.append({"what": "this tree / baseline", "value": med["this tree"] / med["baseline"], "unit": "ratio of medians", "runs": ""})
    report("cloak-ab", rows, {"baseline": args.baseline, "times": times})


if __name__ == "__main__":
    main()
