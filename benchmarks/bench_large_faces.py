"""Large faces (selfies, portraits): does the safe copy still verify as its clean self, and where is the effect lost?

    python -m benchmarks.bench_large_faces [--variant default] [--variant "sface,dlib:people=true:leave=person"] [--min-width 200]
    python -m benchmarks.bench_large_faces --folder lfw-dev/faces --per-folder 1 --upscale 4 --max-photos 16

``--folder`` (under the shared datasets, or a path) takes the photos from another folder, its
subfolders too; ``--upscale K`` resizes each photo K× first (bicubic), which turns LFW's
250 px photos into selfie-sized faces (about 450 px) of many more people than dev/photos has.

For every face at least ``--min-width`` px wide in ``dev/photos`` (the product's own detection),
each photo is cloaked as ``fawkes cloak`` would (mid by default) and written as the product
writes it. Per face and recognizer we read the similarity of the cloaked face to its clean
self at three stages:

1. ``crop``: the optimizer's own view (the cloaked pixels in memory, the clean photo's
   landmarks, our alignment);
2. ``written``: the safe copy as written (JPEG q95 for JPEG and HEIC sources), read back and
   detected afresh;
3. ``jpeg85``: that file re-encoded by the tracker at JPEG q85, detected afresh.

Recognizers: SFace and dlib (ours: YuNet + our alignment, ONNX), SFace as OpenCV aligns it
(``sface-cv``: ``warpAffine`` bilinear without antialiasing, as ``FaceRecognizerSF.alignCrop``),
and dlib's own pipeline (``dlib-native``: HOG, 5-point chip from dlib's pyramid, ResNet from
dlib-bin): the last two cut the crop with trackers' resamplers, not the cloak's. Each under its own threshold:
SFace verifies at cosine ≥ 0.363, dlib at distance < 0.6. A face "no longer verifies" when the
written safe copy's face fails that test against the clean face. Visibility per face is
measured by the independent check (scikit-image SSIM on dlib's HOG box, the ssimulacra2
package) on the written file.
"""

from __future__ import annotations

import argparse
import time
from itertools import groupby, islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.common import SHARED, report

if TYPE_CHECKING:
    from fawkes_engine.photo_io import Photo

PHOTOS = SHARED / "dev" / "photos"
SFACE_MATCH, DLIB_MATCH = 0.363, 0.6


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def main() -> None:
    import cv2

    import fawkes_engine
    from fawkes_engine.align import align_numpy, similarity_transform
    from fawkes_engine.cloak import CloakOptions
    from fawkes_engine.cloak.variant import parse_variant
    from fawkes_engine.evaluate.crossing import nearest_face
    from fawkes_engine.evaluate.readouts import bootstrap_mean
    from fawkes_engine.evaluate.views import NativeDlibView
    from fawkes_engine.evaluate.visibility_check import measure_photo
    from fawkes_engine.faces import FaceDetector
    from fawkes_engine.models import get_extractor
    from fawkes_engine.photo_io import EXTENSIONS, Photo, decode_photo, encode_photo, output_format, read_photo
    from fawkes_engine.pipeline import PhotoCloaker, faces_in

    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="mid")
    ap.add_argument("--variant", action="append", help="'default' or 'EXTRACTORS[:option=value...]' (repeatable)")
    ap.add_argument("--min-width", type=int, default=200)
    ap.add_argument("--only", default="", help="comma-separated photo names (default: every photo)")
    ap.add_argument("--name", default="large-faces")
    ap.add_argument("--folder", default="", help="photos from this folder and its subfolders instead of dev/photos")
    ap.add_argument("--per-folder", type=int, default=0, help="at most this many photos from each subfolder (0: all)")
    ap.add_argument("--max-photos", type=int, default=0, help="at most this many photos (0: all)")
    ap.add_argument("--upscale", type=float, default=1.0, help="resize each photo by this factor first")
    args = ap.parse_args()
    detector = FaceDetector()
    native = NativeDlibView()
    exts = {n: get_extractor(n) for n in ("sface", "dlib")}

    def ours(rgb8: np.ndarray, face) -> dict[str, np.ndarray]:
        out = {
            n: _unit(e.embed_onnx(align_numpy(rgb8, face.landmarks, e.spec.template, e.spec.input_size)[None])[0]) for n, e in exts.items()
        }
        # SFace as OpenCV's FaceRecognizerSF.alignCrop cuts it: warpAffine, bilinear, no antialiasing
        sf = exts["sface"]
        m = similarity_transform(face.landmarks, sf.spec.template)
        out["sface-cv"] = _unit(sf.embed_onnx(cv2.warpAffine(rgb8, m, (sf.spec.input_size,) * 2, flags=cv2.INTER_LINEAR)[None])[0])
        return out

    def dlib_native(rgb8: np.ndarray, box) -> np.ndarray:
        x, y, w, h = box
        x0, y0 = max(0, int(x - 0.5 * w)), max(0, int(y - 0.5 * h))
        x1, y1 = min(rgb8.shape[1], int(x + 1.5 * w)), min(rgb8.shape[0], int(y + 1.5 * h))
        return native.embed([rgb8[y0:y1, x0:x1]])[0]

    def jpeg(rgb8: np.ndarray, q: int) -> np.ndarray:
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(rgb8).save(buf, "JPEG", quality=q)
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))

    only = {n for n in args.only.split(",") if n}
    files = _photo_files(args.folder, only, args.per_folder, args.max_photos, EXTENSIONS)
    base = CloakOptions.of(mode=args.mode)
    rows: list[dict[str, object]] = []
    per_face: dict[str, list[dict[str, object]]] = {}
    for spec in args.variant or ["default"]:
        opts = base if spec == "default" else parse_variant(spec, base)
        pc = PhotoCloaker(opts, detector=detector)
        faces_out: list[dict[str, object]] = []
        seconds = []
        for path in files:
            photo = read_photo(path) if args.upscale == 1 else _upscaled(path, args.upscale)
            found, _ = faces_in(photo, detector)
            big = [f for f in found if f.box[2] >= args.min_width]
            if not big:
                continue
            t = time.perf_counter()
            res = pc.cloak([photo])[0]
            seconds.append(time.perf_counter() - t)
            written = decode_photo(encode_photo(res.photo, "strip-location", fmt=output_format(res.photo)))
            clean8, written8 = photo.rgb8(), written.rgb8()
            q85 = jpeg(written8, 85)
            w_faces, _ = faces_in(written, detector)
            j_faces, _ = faces_in(Photo(q85, "PNG"), detector)
            vis = measure_photo(clean8, written8, [f.box for f in res.faces])
            for fr, v in zip(res.faces, vis):
                if fr.box[2] < args.min_width:
                    continue
                clean_face = nearest_face(found, fr.box)
                c = ours(clean8, clean_face)
                row: dict[str, object] = {
                    "photo": path.name if not args.folder else f"{path.parent.name}/{path.name}",
                    "width": round(fr.box[2]),
                    "dssim": fr.dssim,
                    "kept": fr.kept,
                }
                row["s2 (independent)"] = v.ssimulacra2
                row["dssim 224/112 (independent)"] = max(d for k, d in v.dssim.items() if k != "native")
                for n in exts:
                    row[f"{n} crop"] = 1 - fr.feature_shift[n] ** 2 / 2  # unit vectors: cos = 1 − d²/2
                for stage, img, dets in (("written", written8, w_faces), ("jpeg85", q85, j_faces)):
                    if not dets:
                        continue
                    e = ours(img, nearest_face(dets, fr.box))
                    for n in c:
                        row[f"{n} {stage}"] = float(c[n] @ e[n])
                n_clean = dlib_native(clean8, fr.box)
                row["dlib-native written"] = float(np.linalg.norm(dlib_native(written8, fr.box) - n_clean))
                row["dlib-native jpeg85"] = float(np.linalg.norm(dlib_native(q85, fr.box) - n_clean))
                row["sface unverified"] = float(row.get("sface written", 1.0) < SFACE_MATCH)  # type: ignore[operator]
                row["sface-cv unverified"] = float(row.get("sface-cv written", 1.0) < SFACE_MATCH)  # type: ignore[operator]
                row["dlib-native unverified"] = float(row["dlib-native written"] >= DLIB_MATCH)  # type: ignore[operator]
                faces_out.append(row)
                print({k: (round(x, 3) if isinstance(x, float) else x) for k, x in row.items()}, flush=True)
        per_face[spec] = faces_out
        agg: dict[str, object] = {"variant": spec, "faces": len(faces_out)}
        for key in ("sface unverified", "sface-cv unverified", "dlib-native unverified"):
            mean, lo, hi = bootstrap_mean([float(r[key]) for r in faces_out])  # type: ignore[arg-type]
            agg[key] = mean
            agg[f"{key} ci"] = f"{lo:.2f}-{hi:.2f}"
        agg["both unverified"] = float(np.mean([r["sface unverified"] and r["dlib-native unverified"] for r in faces_out]))
        for key in (
            "sface crop",
            "sface written",
            "sface jpeg85",
            "sface-cv written",
            "sface-cv jpeg85",
            "dlib crop",
            "dlib written",
            "dlib-native written",
            "dlib-native jpeg85",
        ):
            vals = [float(r[key]) for r in faces_out if key in r]  # type: ignore[arg-type]
            agg[f"{key} median"] = float(np.median(vals)) if vals else float("nan")
        agg["s2 median"] = float(np.median([float(r["s2 (independent)"]) for r in faces_out]))  # type: ignore[arg-type]
        agg["s2 worst"] = float(np.min([float(r["s2 (independent)"]) for r in faces_out]))  # type: ignore[arg-type]
        agg["s/photo"] = float(np.median(seconds))
        rows.append(agg)
    extra = {
        "paired": _paired(per_face),
        "faces": per_face,
        "min_width": args.min_width,
        "photos": args.folder or str(PHOTOS),
        "upscale": args.upscale,
    }
    report(args.name, rows, {**extra, "engine": str(Path(fawkes_engine.__file__).parent)})


PAIRED = ("kept", "s2 (independent)", "sface written", "sface-cv written", "sface jpeg85", "dlib-native written", "dlib-native jpeg85")


def _paired(per_face: dict[str, list[dict[str, object]]]) -> dict[str, dict[str, list[float]]]:
    """Each later variant minus the first, face by face (the same photo and face): mean and 95 % interval."""
    from fawkes_engine.evaluate.readouts import bootstrap_mean

    first, *later = list(per_face)
    out: dict[str, dict[str, list[float]]] = {}
    base = {(r["photo"], r["width"]): r for r in per_face.get(first, [])}
    for spec in later:
        pairs = [(base[(r["photo"], r["width"])], r) for r in per_face[spec] if (r["photo"], r["width"]) in base]
        out[spec] = {}
        for key in PAIRED:
            diffs = [float(b[key]) - float(a[key]) for a, b in pairs if key in a and key in b]  # type: ignore[arg-type]
            if diffs:
                out[spec][key] = list(bootstrap_mean(diffs))
        print(f"{spec} − {first}, {len(pairs)} faces:", {k: [round(x, 3) for x in v] for k, v in out[spec].items()})
    return out


def _photo_files(folder: str, only: set[str], per_folder: int, max_photos: int, extensions: set[str]) -> list[Path]:
    root = PHOTOS if not folder else Path(folder) if Path(folder).is_dir() else SHARED / folder
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in extensions and (not only or p.name in only))
    if per_folder:  # sorted by path, so each folder's photos are adjacent
        files = [p for _, group in groupby(files, key=lambda p: p.parent) for p in islice(group, per_folder)]
    return files[:max_photos] if max_photos else files


def _upscaled(path: Path, factor: float) -> Photo:
    from PIL import Image

    from fawkes_engine.photo_io import Photo, read_photo

    rgb = read_photo(path).rgb8()
    size = (round(rgb.shape[1] * factor), round(rgb.shape[0] * factor))
    return Photo(np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC)), "JPEG")


if __name__ == "__main__":
    main()
