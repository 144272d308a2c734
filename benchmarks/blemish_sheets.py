"""Look at the worst faces of cloak variants: side by side at 1× and 3×, at phone size, and as a flicker GIF.

    python -m benchmarks.blemish_sheets [--users 6] [--variant default] [--variant "sface,dlib:blemish_levels=10"]
        [--worst 5] [--out bench-results/sheets]

The faces are the training photos of ``--users`` seeded lfw-dev users (the protection
benchmark's sample, seed 0). Every variant cloaks the same photos; each face is measured by
the independent check (:mod:`fawkes_engine.evaluate.visibility_check`: SSIMULACRA2 by the
package, the largest 3×3 mean |Δluma| by SciPy). For each variant it writes, under ``--out``
(never committed: they show shared photos):

- ``sheet-<variant>.png``: the ``--worst`` faces by the largest 3×3 change; per row the
  original and the cloak at 1×, the same at 3× (nearest neighbour, so no filter hides a
  blemish), and the difference amplified ×8 around grey;
- ``phone-<variant>.png``: the same faces side by side as a phone shows a photo (390 px wide);
- ``flicker-<variant>.gif``: original and cloak alternating, at 3×, for the same faces;
- ``sheets.json``: per face and variant, the measures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import ROOT

LFW = ROOT.parent / "shared" / "datasets" / "lfw-dev" / "faces"


def _crop(a: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return a[y0:y1, x0:x1]


def _row(orig: np.ndarray, cloak: np.ndarray, box: tuple[int, int, int, int]) -> Image.Image:
    a, b = _crop(orig, box), _crop(cloak, box)
    h, w = a.shape[:2]
    diff = np.clip(128 + 8 * (b.astype(np.int16) - a.astype(np.int16)), 0, 255).astype(np.uint8)
    big = [Image.fromarray(x).resize((3 * w, 3 * h), Image.Resampling.NEAREST) for x in (a, b)]
    tiles = [Image.fromarray(a), Image.fromarray(b), *big, Image.fromarray(diff).resize((3 * w, 3 * h), Image.Resampling.NEAREST)]
    row = Image.new("RGB", (sum(t.width for t in tiles) + 8 * len(tiles), 3 * h), "white")
    x = 0
    for t in tiles:
        row.paste(t, (x, 0))
        x += t.width + 8
    return row


def _stack(rows: list[Image.Image]) -> Image.Image:
    out = Image.new("RGB", (max(r.width for r in rows), sum(r.height + 8 for r in rows)), "white")
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height + 8
    return out


def main() -> None:
    from fawkes_engine.cloak import CloakOptions
    from fawkes_engine.cloak.variant import parse_variant
    from fawkes_engine.evaluate.protocol import EvalConfig, Evaluation
    from fawkes_engine.evaluate.visibility_check import measure_photo

    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=6)
    ap.add_argument("--variant", action="append")
    ap.add_argument("--worst", type=int, default=5)
    ap.add_argument("--out", default="bench-results/sheets")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ev = Evaluation(EvalConfig(dataset=LFW, max_users=args.users, tracker_extractors=[], trackers=[], seed=0))
    ev.users = sorted(np.random.default_rng(0).choice(sorted(ev.splits), size=args.users, replace=False).tolist())
    base = CloakOptions()
    record: dict[str, list[dict]] = {}
    for spec in args.variant or ["default"]:
        opts = base if spec == "default" else parse_variant(spec, base)
        faces = []
        for u in ev.users:
            for i, cloaked in ev.cloaked_images(u, opts).items():
                s = ev.samples[i]
                (v,) = measure_photo(s.rgb, cloaked, [s.face.box])
                faces.append({"user": u, "index": i, "box": v.box, "ssimulacra2": v.ssimulacra2, "blemish": v.blemish, "dssim": v.dssim})
        record[spec] = faces
        worst = sorted(faces, key=lambda f: -f["blemish"])[: args.worst]
        name = spec.replace(":", "_").replace(",", "+").replace("=", "")
        rows = [_row(ev.samples[f["index"]].rgb, ev.cloaked_images(f["user"], opts)[f["index"]], f["box"]) for f in worst]
        _stack(rows).save(out / f"sheet-{name}.png")
        phone = []
        for f in worst:
            a, b = ev.samples[f["index"]].rgb, ev.cloaked_images(f["user"], opts)[f["index"]]
            pair = np.concatenate([a, np.full((a.shape[0], 6, 3), 255, np.uint8), b], axis=1)
            im = Image.fromarray(pair)
            phone.append(im.resize((390, round(390 * im.height / im.width)), Image.Resampling.LANCZOS))
        _stack(phone).save(out / f"phone-{name}.png")
        frames = []
        for which in (0, 1):
            tiles = []
            for f in worst:
                a = ev.samples[f["index"]].rgb if which == 0 else ev.cloaked_images(f["user"], opts)[f["index"]]
                c = _crop(a, f["box"])
                tiles.append(Image.fromarray(c).resize((3 * c.shape[1], 3 * c.shape[0]), Image.Resampling.NEAREST))
            frames.append(_stack([_stack([t]) for t in tiles]))
        frames[0].save(out / f"flicker-{name}.gif", save_all=True, append_images=frames[1:], duration=500, loop=0)
        print(f"{spec}: worst {[round(f['blemish'], 1) for f in worst]} levels; sheets in {out}")
    (out / "sheets.json").write_text(json.dumps(record, indent=1, default=str))


if __name__ == "__main__":
    main()
