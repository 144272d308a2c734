"""This tree's cloak against an earlier commit's, timed in one run.

    python -m benchmarks.bench_cloak_ab --baseline REV [--mode mid] [--rounds 3] [--runs 2] [--portrait] [--memory]

Why: this machine's speed drifts by ±30 % over minutes (a shared VM), so two benchmark runs
taken at different times cannot be compared. Here fresh processes of the baseline (a
temporary ``git worktree`` of REV) and of this tree alternate, each timing the same 12 MP
photo end to end (decode, detect, cloak, encode) ``--runs`` times (with ``--portrait`` also
``bench_cloak``'s 12 MP portrait, with ``--memory`` also the peak memory of a 48 MP photo,
once a round); the table gives both medians and their ratio. The photos are made here and
handed over as files, so a baseline need not have the same benchmark code.
"""

from __future__ import annotations

import argparse
import hashlib
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
import benchmarks  # prepares the process as the product does (an older tree: its engine did on import)
import fawkes_engine
print(fawkes_engine.__file__)
from fawkes_engine.cloak import CloakOptions
from fawkes_engine.photo_io import decode_photo, encode_photo
from fawkes_engine.pipeline import PhotoCloaker
pc = PhotoCloaker(getattr(CloakOptions, "of", CloakOptions)(mode=sys.argv[1]))  # before #30 options were flat
data = open(sys.argv[3], "rb").read()
out = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    r = pc.cloak([decode_photo(data)])[0]
    encode_photo(r.photo)
    out.append(time.perf_counter() - t)
print(json.dumps(out))
"""

_PEAK = """
import re, sys
import fawkes_engine
print(fawkes_engine.__file__)
from fawkes_engine.cloak import CloakOptions
from fawkes_engine.photo_io import encode_photo, read_photo
from fawkes_engine.pipeline import PhotoCloaker
pc = PhotoCloaker(getattr(CloakOptions, "of", CloakOptions)(mode=sys.argv[1]))
r = pc.cloak([read_photo(sys.argv[2])])[0]
encode_photo(r.photo)
print(int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024)
"""


def _run(tree: Path, code: str, *args: str) -> str:
    """The last line ``code`` prints, run on ``tree``'s code (its first line says which code ran)."""
    # another tree's code is reached by putting its package folders ahead of the install on the path
    # (a tree from before the packages moved under engine/ and daemon/ gets links of the import names)
    if (tree / "engine" / "fawkes_engine").is_dir():
        path = [tree / "engine", tree / "daemon"]
    else:
        links = Path(tempfile.gettempdir()) / f"fawkes-ab-{hashlib.sha256(str(tree.resolve()).encode()).hexdigest()[:12]}"
        links.mkdir(exist_ok=True)
        for name, folder in (("fawkes_engine", "engine"), ("fawkes_daemon", "daemon")):
            if not (links / name).exists():
                (links / name).symlink_to(tree / folder)
        path = [links]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [*path, tree])), "FAWKES_SHARED": str(SHARED.parent)}
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=tree, env=env, capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    if not Path(lines[0]).resolve().is_relative_to((tree / "engine").resolve()):
        raise RuntimeError(f"{tree}: the child imported {lines[0]}, not this tree's engine")
    return lines[-1]


def _time(tree: Path, mode: str, runs: int, photo: Path) -> list[float]:
    return [float(t) for t in json.loads(_run(tree, _TIMER, mode, str(runs), str(photo)))]


def _peak_mb(tree: Path, mode: str, photo: Path) -> float:
    return float(_run(tree, _PEAK, mode, str(photo)))


def _photos(tmp: Path, portrait: bool, memory: bool) -> dict[str, Path]:
    from benchmarks.bench_cloak import portrait_photo, synthetic_photo

    made = {"12 MP photo, 1 face": lambda: synthetic_photo(12)}
    if portrait:
        made["12 MP portrait, 1 face of 1,130 px"] = portrait_photo
    if memory:
        made["48 MP photo, 1 face: peak RSS"] = lambda: synthetic_photo(48)
    paths = {}
    for i, (what, make) in enumerate(made.items()):
        paths[what] = tmp / f"photo{i}.jpg"
        paths[what].write_bytes(make())
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="git revision to compare with")
    ap.add_argument("--mode", default="mid")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=2, help="timed cloaks per process")
    ap.add_argument("--portrait", action="store_true", help="also time the 12 MP portrait (about a minute a process)")
    ap.add_argument("--memory", action="store_true", help="also measure a 48 MP photo's peak memory, once a round")
    ap.add_argument("--name", default="cloak-ab", help="the JSON's name")
    args = ap.parse_args()
    trees = ("baseline", "this tree")
    values: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        photos = _photos(Path(tmp), args.portrait, args.memory)
        base = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(base), args.baseline], check=True, capture_output=True
        )
        try:
            for what in photos:
                values[what] = {t: [] for t in trees}
            for _ in range(args.rounds):
                for tree_name, tree in zip(trees, (base, ROOT)):
                    for what, photo in photos.items():
                        if what.endswith("peak RSS"):
                            values[what][tree_name].append(_peak_mb(tree, args.mode, photo))
                        else:
                            values[what][tree_name] += _time(tree, args.mode, args.runs, photo)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    rows: list[dict[str, object]] = []
    for what, by_tree in values.items():
        unit = "MB (median)" if what.endswith("peak RSS") else "s/photo (median)"
        med = {t: statistics.median(v) for t, v in by_tree.items()}
        for t, v in by_tree.items():
            label = f"{what}, mode {args.mode}: {t}" + (f" ({args.baseline})" if t == "baseline" else "")
            rows.append({"what": label, "value": med[t], "unit": unit, "runs": len(v)})
        rows.append(
            {"what": f"{what}: this tree / baseline", "value": med["this tree"] / med["baseline"], "unit": "ratio of medians", "runs": ""}
        )
    report(args.name, rows, {"baseline": args.baseline, "values": values})


if __name__ == "__main__":
    main()
