"""Cloaking speed and memory on this machine.

    python -m benchmarks.bench_cloak [--device cuda] [--repeats 3]

Rows: median seconds per 12 MP JPEG photo with one face for each mode (a real 12 MP
no-face photo with a dev portrait pasted in at 2×, face ≈ 390 px wide, end to end:
decode, detect, cloak, encode); a 12 MP portrait (``lady.jpg`` resized to 4032×3024, face
≈ 1,130 px wide) at mid; faces per second for a batch of 32 aligned 112×112 faces;
peak resident memory for a 48 MP photo with one face (measured in a child process).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

from PIL import Image

from benchmarks.common import SHARED, median_seconds, report

PHOTOS = SHARED / "dev" / "photos"


def synthetic_photo(megapixels: int) -> bytes:
    """A real no-face camera photo, resized to the size asked, with a real portrait pasted in at 2×."""
    bg = Image.open(PHOTOS / "pixel_IMG_20180725_163423_noface.jpg").convert("RGB")
    w = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    h = int(w * 3 / 4)
    bg = bg.resize((w, h), Image.BICUBIC)
    face = Image.open(PHOTOS / "lady.jpg").convert("RGB")
    scale = 2 * (w / 4000)
    face = face.resize((int(face.width * scale), int(face.height * scale)), Image.BICUBIC)
    bg.paste(face, ((w - face.width) // 2, (h - face.height) // 2))
    buf = io.BytesIO()
    bg.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def portrait_photo() -> bytes:
    """A 12 MP portrait: the dev portrait resized to 4032×3024, so its one face is about 1,130 px wide."""
    img = Image.open(PHOTOS / "lady.jpg").convert("RGB").resize((4032, 3024), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def peak_memory_child(megapixels: int, device: str) -> float:
    """Peak RSS of a fresh process that reads, cloaks and encodes one photo (the photo is made beforehand,
    so building the synthetic test image does not count)."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".jpg", delete=False) as f:
        f.write(synthetic_photo(megapixels))
        path = f.name
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a child forked from
    # this (large) benchmark process would report the parent's size.
    code = (
        "import re\n"
        "import benchmarks\n"  # prepares the process as the product does
        "from fawkes_engine.photo_io import read_photo, encode_photo\n"
        "from fawkes_engine.pipeline import PhotoCloaker\n"
        "from fawkes_engine.cloak import CloakOptions\n"
        f"pc = PhotoCloaker(CloakOptions.of(mode='mid', device='{device}'))\n"
        f"photo = read_photo({path!r})\n"
        "r = pc.cloak([photo])[0]\n"
        "out = encode_photo(r.photo)\n"
        "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "print(len(r.faces), hwm / 1024)\n"
    )
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    finally:
        Path(path).unlink(missing_ok=True)
    faces, mb = out.stdout.split()[-2:]
    return float(mb)


def main() -> None:
    from fawkes_engine.cloak import MODES, CloakOptions
    from fawkes_engine.photo_io import decode_photo, encode_photo
    from fawkes_engine.pipeline import PhotoCloaker

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-portrait", action="store_true", help="skip the 12 MP portrait row (about 30 s a run on 2 cores)")
    ap.add_argument("--skip-batch", action="store_true", help="skip the 32-face batch row (minutes on a 2-core CPU)")
    ap.add_argument("--modes", default=",".join(MODES), help="modes timed on the 12 MP photo")
    ap.add_argument(
        "--ensembles",
        default="",
        help="also time these cloaking sets at mid on the 12 MP photo, ';'-separated, e.g. 'sface,dlib;sface,dlib,faceres,mobileface'",
    )
    ap.add_argument("--name", default="cloak", help="the JSON's name")
    args = ap.parse_args()
    rows: list[dict[str, object]] = []
    data = synthetic_photo(12)
    # one untimed cloak first: a process's first cloak pays one-time costs (kernel set-up, heap growth)
    # that belong to no mode
    PhotoCloaker(CloakOptions.of(mode="mid", device=args.device)).cloak([decode_photo(data)])
    for mode in args.modes.split(","):
        pc = PhotoCloaker(CloakOptions.of(mode=mode, device=args.device))
        faces = []

        def run() -> None:
            r = pc.cloak([decode_photo(data)])[0]
            faces.append(len(r.faces))
            encode_photo(r.photo)

        sec = median_seconds(run, args.repeats, warmup=0)
        rows.append(
            {
                "what": f"12 MP photo, 1 face, mode {mode}",
                "device": str(pc.cloaker.device),
                "value": sec,
                "unit": "s/photo (median)",
                "faces": faces[-1],
            }
        )
    if not args.skip_portrait:
        portrait = portrait_photo()
        pc = PhotoCloaker(CloakOptions.of(mode="mid", device=args.device))
        sec = median_seconds(lambda: encode_photo(pc.cloak([decode_photo(portrait)])[0].photo), args.repeats, warmup=0)
        rows.append(
            {
                "what": "12 MP portrait, 1 face of 1,130 px, mode mid",
                "device": str(pc.cloaker.device),
                "value": sec,
                "unit": "s/photo (median)",
                "faces": 1,
            }
        )
    for ensemble in [e for e in args.ensembles.split(";") if e]:
        pc = PhotoCloaker(CloakOptions.of(mode="mid", device=args.device, extractors=tuple(ensemble.split(","))))
        pc.cloak([decode_photo(data)])  # the new models' one-time costs (export, first kernels) are not the cloak's
        sec = median_seconds(lambda pc=pc: encode_photo(pc.cloak([decode_photo(data)])[0].photo), args.repeats, warmup=0)
        rows.append(
            {
                "what": f"12 MP photo, 1 face, mid, cloaked with {ensemble}",
                "device": str(pc.cloaker.device),
                "value": sec,
                "unit": "s/photo (median)",
                "faces": 1,
            }
        )
    if not args.skip_batch:
        # aligned crops only: the dev folders also hold a few full photos, which made earlier runs of this
        # row a mix of 112 px crops and multi-megapixel photos
        photos = [
            ph
            for ph in (decode_photo(p.read_bytes()) for p in sorted((SHARED / "dev" / "faces").glob("*/*.jpg")))
            if ph.rgb.shape[:2] == (112, 112)
        ][:32]
        pc = PhotoCloaker(CloakOptions.of(mode="mid", device=args.device))
        sec = median_seconds(lambda: pc.cloak(photos), max(1, args.repeats - 1), warmup=0)
        rows.append(
            {
                "what": "batch of 32 aligned 112x112 faces, mode mid",
                "device": str(pc.cloaker.device),
                "value": 32 / sec,
                "unit": "faces/s",
                "faces": 32,
            }
        )
    if not args.skip_memory:
        mb = peak_memory_child(48, args.device)
        rows.append({"what": "48 MP photo, 1 face, mode mid: peak RSS", "device": args.device, "value": mb, "unit": "MB", "faces": 1})
    report(args.name, rows, {"goals": {"default_mode_s_per_12mp_photo": 4.0, "portrait_s_per_12mp_photo": 8.0, "peak_mb_48mp": 1536}})


if __name__ == "__main__":
    main()
