"""`fawkes sybil --user DIR --candidates DIR --out DIR`: photos for a Sybil account (paper §7).

Sybil photos are another, consenting person's (or a synthetic) face, cloaked to look like
the user to a face recognizer. They are posted under a separate account; see the README.
Output: ``<user photo stem>_sybil<k>.<ext>`` per user photo, a JSON report with the
feature distances, and a closing table. Originals are never written to.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fawkes_daemon.cli.cloak_flags import add_cloak_flags, cloak_config
from fawkes_engine.photo_io import EXTENSIONS, PhotoError, read_photo, write_photo


def _photos(folder: Path, what: str) -> tuple[list[Path], list]:
    if not folder.is_dir():
        raise SystemExit(f"fawkes sybil: {folder}: not a folder of {what} photos")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
    ok, photos = [], []
    for p in paths:
        try:
            photos.append(read_photo(p))
            ok.append(p)
        except PhotoError as e:
            print(f"fawkes sybil: {e}; skipped", file=sys.stderr)
    if not photos:
        raise SystemExit(f"fawkes sybil: {folder}: no readable {what} photos")
    return ok, photos


def cmd_sybil(args: argparse.Namespace) -> int:
    from fawkes_engine.sybil import make_sybils

    user_paths, user_photos = _photos(Path(args.user), "user")
    cand_paths, candidates = _photos(Path(args.candidates), "candidate")
    out = Path(args.out)
    if out.resolve() in {Path(args.user).resolve(), Path(args.candidates).resolve()}:
        raise SystemExit("fawkes sybil: --out must be a different folder from --user and --candidates")
    out.mkdir(parents=True, exist_ok=True)
    opts = cloak_config(args).to_options(args.device)
    try:
        made = make_sybils(user_photos, candidates, args.per_photo, opts, goal=args.goal)
    except ValueError as e:
        print(f"fawkes sybil: {e}", file=sys.stderr)
        return 1
    report = []
    table = Table(title=f"Sybil photos ({args.mode}): feature distance to the user's photo, before → after")
    for col in ("user photo", "Sybil photo", "candidate", "DSSIM", *(f"{n} to user" for n in opts.targeting.extractors)):
        table.add_column(col)
    count: dict[int, int] = {}
    for m in made:
        k = count[m.user_index] = count.get(m.user_index, 0) + 1
        src = user_paths[m.user_index]
        dst = out / f"{src.stem}_sybil{k}{cand_paths[m.candidate_index].suffix.lower()}"
        write_photo(m.photo, dst, policy="strip-all")  # the Sybil account must not leak where or when
        report.append(
            {
                "user_photo": str(src),
                "sybil_photo": str(dst),
                "candidate": str(cand_paths[m.candidate_index]),
                "dssim": m.face.dssim,
                "to_user_before": m.to_user_before,
                "to_user_after": m.to_user_after,
                "own_shift": m.own_shift,
            }
        )
        table.add_row(
            src.name,
            dst.name,
            cand_paths[m.candidate_index].name,
            f"{m.face.dssim:.4f}",
            *(f"{m.to_user_before[n]:.2f} → {m.to_user_after[n]:.2f}" for n in opts.targeting.extractors),
        )
    Console(width=160).print(table)
    (out / "sybil-report.json").write_text(json.dumps(report, indent=2))
    print(f"{len(made)} Sybil photo(s) in {out}; post them from a separate account, never the user's own")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("sybil", help="make Sybil-account photos that look like you to face recognition (paper §7)")
    s.add_argument("--user", required=True, metavar="DIR", help="your own photos (clean)")
    s.add_argument("--candidates", required=True, metavar="DIR", help="photos of a consenting person, or synthetic faces")
    s.add_argument("--out", required=True, metavar="DIR")
    s.add_argument("--per-photo", type=int, default=1, help="Sybil photos per user photo")
    # default high: at mid's honest budget another person's face rarely gets near yours
    add_cloak_flags(s, only=("mode", "seed"), defaults={"mode": "high", "seed": 0})
    s.add_argument(
        "--goal",
        choices=["photo", "centroid"],
        default="photo",
        help="pull each Sybil photo onto one of your photos, or onto their centroid",
    )
    s.add_argument("--device", default="auto")
    s.set_defaults(func=cmd_sybil)
