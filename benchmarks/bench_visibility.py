"""How visible the cloak is, per mode, measured independently on the written files.

    python -m benchmarks.bench_visibility [--modes low,mid,high] [--lfw 12] [--budgets 0.002,0.02]
        [--out results/visibility] [--sheet]

Faces: every face in ``dev/photos`` and the first photo of ``--lfw`` lfw-dev identities
(250 px LFW photos). Each photo is cloaked, written as the daemon writes it (JPEG q95 for
a JPEG or HEIC source) and as PNG (the cloak's own change, before encoding), and each face
is measured by :mod:`engine.evaluate.visibility_check` (dlib HOG box grown 20 %,
scikit-image SSIM, Lanczos resampling to 224 and 112 px wide, SSIMULACRA2), which shares no
code with the optimizer. The engine's own per-scale figures are recorded beside it.

Rows per mode: DSSIM median and worst at the face's own resolution (PNG) and at 224 and
112 px (written file), SSIMULACRA2 median and worst (written file), seconds per photo. The
goals of issue 18 are checked in the JSON (``goals``). ``--sheet`` writes a contact sheet
of original and cloaked face crops at 100 % per mode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, SHARED, machine, report

DEV = SHARED / "dev"
LFW = SHARED / "lfw-dev" / "faces"


def sources(lfw: int) -> list[Path]:
    photos = sorted(p for p in (DEV / "photos").iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".heic", ".png"})
    ids = sorted(p for p in LFW.iterdir() if p.is_dir())[:lfw]
    return photos + [i / "1.jpg" for i in ids]


def run_mode(mode: str, budget: float | None, srcs: list[Path], tmp: Path) -> tuple[list[dict], list[tuple[np.ndarray, np.ndarray, str]]]:
    from fawkes_engine.cloak import CloakOptions
    from fawkes_engine.evaluate.visibility_check import measure_photo
    from fawkes_engine.faces import FaceDetector
    from fawkes_engine.photo_io import read_photo, write_photo
    from fawkes_engine.pipeline import PhotoCloaker

    pc = PhotoCloaker(CloakOptions.of(mode=mode, dssim_budget=budget), detector=FaceDetector())
    faces: list[dict] = []
    crops: list[tuple[np.ndarray, np.ndarray, str]] = []
    for src in srcs:
        photo = read_photo(src)
        t = time.perf_counter()
        result = pc.cloak([photo])[0]
        seconds = time.perf_counter() - t
        if not result.faces:
            continue
        lossless = read_photo(write_photo(result.photo, tmp / "c.png")).rgb
        written = read_photo(write_photo(result.photo, tmp / f"c.{'png' if src.suffix.lower() == '.png' else 'jpg'}")).rgb
        boxes = [f.box for f in result.faces]
        own = measure_photo(photo.rgb, lossless, boxes)
        enc = measure_photo(photo.rgb, written, boxes)
        for f, a, b in zip(result.faces, own, enc):
            faces.append(
                {
                    "source": str(src.relative_to(SHARED)),
                    "face_width": round(f.box[2]),
                    "seconds_per_photo": seconds,
                    "box": list(a.box),
                    "box_source": a.source,
                    "native": a.dssim["native"],
                    **{k: v for k, v in b.dssim.items() if k != "native"},
                    "ssimulacra2": b.ssimulacra2,
                    "ssimulacra2_png": a.ssimulacra2,
                    "engine_dssim": f.dssim,
                    "engine_scales": {str(k): v for k, v in f.dssim_scales.items()},
                    "binding_width": f.binding_width,
                    "engine_ssimulacra2": f.ssimulacra2,
                    "budget": f.budget,
                    "steps": f.steps,
                    "eye_chroma": eye_chroma_change(
                        photo.rgb8(), written if written.dtype == np.uint8 else (written // 257).astype(np.uint8), f.box, pc, photo
                    ),
                }
            )
            x0, y0, x1, y1 = a.box
            crops.append(
                (
                    photo.rgb8()[y0:y1, x0:x1],
                    lossless[y0:y1, x0:x1].astype(np.uint8)
                    if lossless.dtype == np.uint8
                    else (lossless[y0:y1, x0:x1] // 257).astype(np.uint8),
                    src.name,
                )
            )
    return faces, crops


def eye_chroma_change(before: np.ndarray, after: np.ndarray, box, pc, photo) -> float:
    """The largest mean |Δ| of the chroma planes (Cb, Cr of PIL's YCbCr, 0–255) in a disc around either eye.

    Measured on the cloak written losslessly, with the detector's landmarks, independently of
    the perceptual weights that keep chroma out of the eyes (0: no colour change there).
    """
    from PIL import Image

    from fawkes_engine.evaluate.crossing import nearest_face

    faces = pc.detector.detect(before).faces
    if not faces:
        return float("nan")
    lm = nearest_face(faces, box).landmarks
    r = max(2, int(0.15 * float(np.linalg.norm(lm[0] - lm[1]))))
    ya = np.asarray(Image.fromarray(before).convert("YCbCr"), np.float32)
    yb = np.asarray(Image.fromarray(after).convert("YCbCr"), np.float32)
    worst = 0.0
    for ex, ey in lm[:2]:
        x0, y0 = max(0, int(ex) - r), max(0, int(ey) - r)
        patch = np.abs(yb[y0 : int(ey) + r + 1, x0 : int(ex) + r + 1, 1:] - ya[y0 : int(ey) + r + 1, x0 : int(ex) + r + 1, 1:])
        if patch.size:
            worst = max(worst, float(patch.mean()))
    return worst


def summary(label: str, faces: list[dict]) -> dict[str, object]:
    def col(k: str) -> list[float]:
        return [float(f[k]) for f in faces if k in f]

    s2 = col("ssimulacra2")
    row: dict[str, object] = {"mode": label, "faces": len(faces)}
    for k in ("native", "224", "112"):
        v = col(k)
        row[f"{k} med"], row[f"{k} worst"] = (statistics.median(v), max(v)) if v else (None, None)
    row["s2 med"], row["s2 worst"] = statistics.median(s2), min(s2)
    eyes = [v for v in col("eye_chroma") if v == v]
    if eyes:
        row["eye chroma Δ med"], row["eye chroma Δ worst"] = statistics.median(eyes), max(eyes)
    row["s/photo"] = statistics.median(dict.fromkeys(f["seconds_per_photo"] for f in faces))
    return row


def contact_sheet(crops: list[tuple[np.ndarray, np.ndarray, str]], path: Path, max_width: int = 2400) -> None:
    """Original | cloaked pairs at 100 %, packed in rows; large faces are kept at 100 % and cut to 400 px."""
    from PIL import Image

    tiles = []
    for a, b, _name in crops:
        h, w = a.shape[:2]
        if w > 400 or h > 400:  # keep 100 %: show the face's centre
            cy, cx = h // 2, w // 2
            a, b = a[max(0, cy - 200) : cy + 200, max(0, cx - 200) : cx + 200], b[max(0, cy - 200) : cy + 200, max(0, cx - 200) : cx + 200]
        tiles.append(np.concatenate([a, np.full((a.shape[0], 4, 3), 255, np.uint8), b], axis=1))
    rows, row, width = [], [], 0
    for t in tiles:
        if row and width + t.shape[1] > max_width:
            rows.append(row)
            row, width = [], 0
        row.append(t)
        width += t.shape[1] + 8
    if row:
        rows.append(row)
    canvas_rows = []
    for r in rows:
        h = max(t.shape[0] for t in r)
        padded = [np.pad(t, ((0, h - t.shape[0]), (0, 8), (0, 0)), constant_values=255) for t in r]
        line = np.concatenate(padded, axis=1)
        canvas_rows.append(np.pad(line, ((0, 8), (0, max_width + 400 - line.shape[1]), (0, 0)), constant_values=255))
    Image.fromarray(np.concatenate(canvas_rows, axis=0)).save(path)


def goals(by_mode: dict[str, list[dict]]) -> dict[str, object]:
    out: dict[str, object] = {}
    mid = by_mode.get("mid")
    if mid:
        worst_crop = max(max(f.get("224", 0.0), f.get("112", 0.0)) for f in mid)
        s2 = [f["ssimulacra2"] for f in mid]
        out["mid: every face ≤ 0.007 at 224 and 112 px (written file)"] = {"worst": worst_crop, "met": worst_crop <= 0.007}
        out["mid: SSIMULACRA2 median ≥ 80"] = {"value": statistics.median(s2), "met": statistics.median(s2) >= 80}
        out["mid: SSIMULACRA2 worst ≥ 65"] = {"value": min(s2), "met": min(s2) >= 65}
    low = by_mode.get("low")
    if low:
        m = statistics.median(f["ssimulacra2"] for f in low)
        out["low: SSIMULACRA2 median ≥ 85"] = {"value": m, "met": m >= 85}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="low,mid,high")
    ap.add_argument("--budgets", default="", help="extra rows: mid's settings at these DSSIM budgets")
    ap.add_argument("--lfw", type=int, default=12, help="lfw-dev identities (first photo of each)")
    ap.add_argument("--only", default="", help="comma-separated substrings: only the sources that contain one")
    ap.add_argument("--out", default=str(ROOT / "results" / "visibility"))
    ap.add_argument("--sheet", action="store_true", help="write a contact sheet PNG per mode")
    args = ap.parse_args()
    srcs = [s for s in sources(args.lfw) if not args.only or any(o in str(s) for o in args.only.split(","))]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [(m, None) for m in args.modes.split(",") if m] + [("mid", float(b)) for b in args.budgets.split(",") if b]
    rows, by_mode = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, budget in runs:
            label = mode if budget is None else f"ρ {budget:g}"
            faces, crops = run_mode(mode, budget, srcs, Path(tmp))
            by_mode[label] = faces
            rows.append(summary(label, faces))
            if args.sheet and budget is None:
                contact_sheet(crops, out / f"contact-{mode}.png")
            # Written after every mode: a long run that is stopped keeps the modes it finished.
            (out / "visibility.json").write_text(
                json.dumps(
                    {"benchmark": "visibility", "machine": machine(), "rows": rows, "goals": goals(by_mode), "faces": by_mode}, indent=2
                )
            )
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    path = report("visibility", rows, {"goals": goals(by_mode), "faces": by_mode})
    print(json.dumps(goals(by_mode), indent=2, ensure_ascii=False), f"\nalso written {out / 'visibility.json'} (from {path.name})")


if __name__ == "__main__":
    main()
