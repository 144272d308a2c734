"""Faces a minute on an accelerator, by batch size and precision, with protection and visibility
beside the CPU path's: the prepared check of a lent GPU (issue #31).

    FAWKES_SHARED=/path/to/shared python -m benchmarks.bench_gpu [--device cuda] [--batch-sizes 1,8,32,128]
        [--precisions fp32,bf16] [--compile] [--check 16]

Throughput: LFW-size photos (250×250, one face) cloaked at mid as one call per batch, so all
the faces of a batch share one optimization; the first batch of each setting is untimed
(kernel set-up, and compilation with ``--compile``). Quality: ``--check`` faces cloaked by the
CPU path (fp32) and by each accelerator setting, compared by the engine's fp32 measures
(feature shift per extractor, the share of faces not carried across) and by the independent
visibility check (scikit-image DSSIM, the ``ssimulacra2`` package) on the written pixels.
A setting keeps the result when its medians lie within the CPU run's own spread.

On a 2-core CPU it runs as a smoke test: ``--device cpu --batch-sizes 1,2 --check 2``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.common import SHARED, report


def _photos(folder: Path, n: int) -> list:
    from fawkes_engine.photo_io import read_photo

    paths = sorted(folder.glob("*/*.jpg"))
    if len(paths) < n:
        raise SystemExit(f"{folder}: {len(paths)} photos, {n} needed")
    step = len(paths) // n  # spread over the identities rather than the first few
    return [read_photo(p) for p in paths[::step][:n]]


def _quality(photos: list, results: list) -> dict[str, float]:
    """Medians over the faces: the engine's fp32 feature shift and weak share, the independent DSSIM and SSIMULACRA2."""
    from fawkes_engine.evaluate.visibility_check import measure_photo

    shift: dict[str, list[float]] = {}
    weak, dssim, s2 = [], [], []
    for ph, r in zip(photos, results):
        for f in r.faces:
            for e, v in f.feature_shift.items():
                shift.setdefault(e, []).append(v)
            weak.append(float(f.weak))
        for v in measure_photo(ph.rgb, r.photo.rgb, [f.box for f in r.faces]):
            dssim.append(v.dssim["native"])
            s2.append(v.ssimulacra2)
    out = {f"feature shift {e} (median)": statistics.median(v) for e, v in shift.items()}
    out.update(
        {
            "weak share": float(np.mean(weak)),
            "DSSIM native (median)": statistics.median(dssim),
            "SSIMULACRA2 (median)": statistics.median(s2),
        }
    )
    return out


def main() -> None:
    from fawkes_engine.cloak import CloakOptions
    from fawkes_engine.pipeline import PhotoCloaker

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--faces", type=Path, default=SHARED / "lfw-dev" / "faces")
    ap.add_argument("--batch-sizes", default="1,8,32,128")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--compile", action="store_true", help="also each precision with torch.compile")
    ap.add_argument("--check", type=int, default=16, help="faces compared with the CPU path")
    ap.add_argument("--name", default="gpu")
    args = ap.parse_args()
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    photos = _photos(args.faces, max(sizes) * 2)
    check = photos[: args.check]
    settings = [(p, False) for p in args.precisions.split(",")] + ([(p, True) for p in args.precisions.split(",")] if args.compile else [])
    rows: list[dict[str, object]] = []
    cpu = PhotoCloaker(CloakOptions.of(mode="mid", device="cpu"))
    rows.append({"what": "CPU path, fp32", "batch": len(check), **_quality(check, cpu.cloak(check))})
    for precision, compiled in settings:
        pc = PhotoCloaker(CloakOptions.of(mode="mid", device=args.device, precision=precision, compile=compiled))
        label = f"{args.device}, {precision}" + (", compiled" if compiled else "")
        for b in sizes:
            pc.cloak(photos[b : 2 * b])  # untimed: set-up and compilation for this batch size
            t = time.perf_counter()
            pc.cloak(photos[:b])
            rows.append({"what": label, "batch": b, "faces/min": 60 * b / (time.perf_counter() - t)})
        rows.append({"what": label, "batch": len(check), **_quality(check, pc.cloak(check))})
    report(args.name, rows, {"goal_faces_per_min": 1000, "mode": "mid"})


if __name__ == "__main__":
    main()
