"""`fawkes eval --dataset DIR`: measure protection against trackers (table, JSON, PNG plots)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fawkes_daemon.cli.cloak_flags import add_cloak_flags, cloak_config
from fawkes_engine.cloak import MODES


def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def cmd_eval(args: argparse.Namespace) -> int:
    from fawkes_engine.evaluate.protocol import EvalConfig
    from fawkes_engine.evaluate.report import (
        DETECTION_HEADER,
        HEADER,
        TRANSFER_HEADER,
        detection_table_rows,
        plot,
        table_rows,
        transfer_table_rows,
        write_json,
    )
    from fawkes_engine.evaluate.scenarios import run

    console = Console(stderr=True, soft_wrap=True)
    cloak = cloak_config(args).to_options(args.device)
    cfg = EvalConfig(
        dataset=Path(args.dataset),
        users=args.user or None,
        max_users=args.max_users,
        cloak=cloak,
        modes=args.modes.split(","),
        tracker_extractors=args.trackers_from.split(","),
        trackers=args.trackers.split(","),
        label_density=_ints(args.label_density),
        leaked=_floats(args.leaked),
        jpeg=_ints(args.jpeg),
        blur=_floats(args.blur),
        noise=_floats(args.noise),
        sybil=_ints(args.sybil),
        sybil_candidates=Path(args.sybil_candidates) if args.sybil_candidates else None,
        sybil_pool=args.sybil_pool,
        sybil_goal=args.sybil_goal,
        detection=args.detection,
        stop_fraction=args.stop_fraction,
        transfer=args.transfer or [],
        transfer_jpeg=args.transfer_jpeg,
        mode_rows=not args.transfer_only,
        seed=args.seed,
    )
    if any(cfg.sybil) and cfg.sybil_candidates is None:
        console.print("fawkes eval: --sybil needs --sybil-candidates DIR (faces of people outside the dataset)")
        return 2
    if cfg.transfer:
        from fawkes_engine.cloak.variant import parse_variant

        try:
            for spec in cfg.transfer:
                parse_variant(spec, cloak)
        except ValueError as e:
            console.print(f"fawkes eval: {e}")
            return 2
    result = run(cfg, progress=lambda m: console.print(m))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = Table(title=f"fawkes eval: {cfg.dataset} ({len(result['users'])} protected users, {result['identities']} identities)")
    for h in HEADER:
        table.add_column(h)
    for row in table_rows(result):
        table.add_row(*row)
    Console(width=160).print(table)
    det_rows = detection_table_rows(result)
    if det_rows:
        t2 = Table(title="cloak detection (paper §8): detection rate and protection, without and with each mitigation")
        for h in DETECTION_HEADER:
            t2.add_column(h)
        for row in det_rows:
            t2.add_row(*row)
        Console(width=160).print(t2)
    tr_rows = transfer_table_rows(result)
    if tr_rows:
        t3 = Table(title=f"transfer (leave one model out): cloak variant × tracker, PNG and JPEG q{cfg.transfer_jpeg}")
        for h in TRANSFER_HEADER:
            t3.add_column(h, overflow="fold")
        for row in tr_rows:
            t3.add_row(*row)
        Console(width=200).print(t3)
    j = write_json(result, out / "eval.json")
    plots = plot(result, out)
    console.print(f"written {j} and {len(plots)} plots in {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    e = sub.add_parser("eval", help="measure protection against face-recognition trackers on a labelled folder")
    e.add_argument("--dataset", required=True, metavar="DIR", help="one sub-folder of photos per identity")
    e.add_argument("--user", action="append", help="protected identity (repeatable; default: a seeded sample)")
    e.add_argument("--max-users", type=int, default=8)
    e.add_argument("--modes", default="mid", help=f"comma list of {', '.join(MODES)}")
    add_cloak_flags(e, only=("extractors", "steps", "seed"), defaults={"seed": 0})
    e.add_argument("--trackers-from", default="sface,dlib", help="tracker extractors, comma list (also: dlib-native)")
    e.add_argument("--trackers", default="linear,similarity", help="comma list of linear, similarity, end-to-end")
    e.add_argument("--label-density", default="", help="tracker class counts, e.g. 2,5,10,20")
    e.add_argument("--leaked", default="", help="clean fractions of the user's training photos, e.g. 0,0.1,0.3,0.5")
    e.add_argument("--jpeg", default="", help="tracker's JPEG qualities on training photos, e.g. 95,85,50,10")
    e.add_argument("--blur", default="", help="tracker's Gaussian blur sigmas, e.g. 0.5,1,2")
    e.add_argument("--noise", default="", help="tracker's Gaussian noise std (0-255), e.g. 2,5,10")
    e.add_argument("--sybil", default="", help="Sybil photos per user photo, crossed with --leaked, e.g. 0,1,2")
    e.add_argument("--sybil-candidates", metavar="DIR", help="folders of faces of people outside the dataset (Sybil candidates)")
    e.add_argument("--sybil-pool", type=int, default=120, help="candidate photos drawn (one per identity folder)")
    e.add_argument(
        "--sybil-goal",
        choices=["photo", "centroid"],
        default="photo",
        help="Sybil photos pulled onto each user photo or onto their centroid",
    )
    e.add_argument("--detection", action="store_true", help="paper §8 detectors with and without mitigations")
    e.add_argument("--stop-fraction", type=float, default=0.5, help="mitigation (a): stop at this fraction of the way to the target")
    e.add_argument(
        "--transfer",
        action="append",
        metavar="VARIANT",
        help="leave-one-model-out transfer table: a cloak variant 'EXTRACTORS[:option=value...]' "
        "(e.g. 'dlib,dlib-robust' or 'sface:diversity_prob=0.5'), measured only against trackers of other families; repeatable",
    )
    e.add_argument("--transfer-only", action="store_true", help="skip the default cloak's per-mode rows")
    e.add_argument("--transfer-jpeg", type=int, default=85, help="JPEG quality of the transfer table's second column (0: none)")
    e.add_argument("--device", default="auto")
    e.add_argument("--out", default="eval-results", metavar="DIR")
    e.set_defaults(func=cmd_eval)
