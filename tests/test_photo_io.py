"""Photo fidelity: orientation, colour profile, metadata policy, formats, odd modes, bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from fawkes_engine.photo_io import PhotoError, apply_metadata_policy, read_photo, write_photo

GPS_IFD = 0x8825


def _face_photo(dev: Path) -> Image.Image:
    return Image.open(dev / "photos" / "lady.jpg").convert("RGB")


def _exif_with_gps(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0112] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "N"
    gps[2] = (52.0, 22.0, 1.0)
    gps[3] = "E"
    gps[4] = (4.0, 53.0, 2.0)
    return exif


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
    b'exif:GPSLatitude="52,22.0N" exif:GPSLongitude="4,53.0E" photoshop:City="Amsterdam" photoshop:Headline="Holiday"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


@pytest.mark.integration
def test_exif_orientation_applied_and_reset(dev: Path, tmp_path: Path) -> None:
    im = _face_photo(dev)
    stored = im.transpose(Image.Transpose.ROTATE_90)  # what a camera stores for orientation 6 (rotate 270 to view)
    src = tmp_path / "rot.jpg"
    stored.save(src, quality=98, exif=_exif_with_gps(orientation=6).tobytes())
    photo = read_photo(src)
    assert photo.rgb.shape[:2] == (im.height, im.width)  # upright
    out = write_photo(photo, tmp_path / "out.jpg")
    back = Image.open(out)
    assert back.getexif().get(0x0112, 1) == 1
    assert back.size == (im.width, im.height)


@pytest.mark.integration
def test_icc_profile_kept(dev: Path, tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "icc.png"
    _face_photo(dev).save(src, icc_profile=icc)
    out = write_photo(read_photo(src), tmp_path / "o.png")
    assert Image.open(out).info.get("icc_profile") == icc


@pytest.mark.integration
@pytest.mark.parametrize("policy", ["strip-location", "keep", "strip-all"])
def test_metadata_policy(policy: str, dev: Path, tmp_path: Path) -> None:
    src = tmp_path / "gps.jpg"
    _face_photo(dev).save(src, quality=95, exif=_exif_with_gps().tobytes(), xmp=XMP)
    out = write_photo(read_photo(src), tmp_path / "o.jpg", policy)  # type: ignore[arg-type]
    back = Image.open(out)
    exif = back.getexif()
    xmp = back.info.get("xmp", b"")
    if policy == "keep":
        assert exif.get_ifd(GPS_IFD) and exif.get(0x010F) == "TestCam" and b"Amsterdam" in xmp
    elif policy == "strip-location":
        assert not exif.get_ifd(GPS_IFD) and exif.get(0x010F) == "TestCam"
        assert b"GPSLatitude" not in xmp and b"Amsterdam" not in xmp and b"Holiday" in xmp
    else:
        assert not exif and not xmp


@pytest.mark.integration
def test_jpeg_written_at_high_quality_444(dev: Path, tmp_path: Path) -> None:
    from PIL import JpegImagePlugin

    out = write_photo(read_photo(dev / "photos" / "lady.jpg"), tmp_path / "o.jpg")
    back = Image.open(out)
    assert JpegImagePlugin.get_sampling(back) == 0  # 4:4:4
    ref = io.BytesIO()
    Image.new("RGB", (16, 16)).save(ref, "JPEG", quality=95)
    q95 = Image.open(ref).quantization
    assert all(a <= b for a, b in zip(back.quantization[0], q95[0]))  # at least quality 95


@pytest.mark.integration
def test_heic_round_trip(dev: Path, tmp_path: Path) -> None:
    photo = read_photo(dev / "photos" / "nokia_bothie_selfie.heic")
    out = write_photo(photo, tmp_path / "o.heic")
    back = read_photo(out)
    assert back.format == "HEIF" and back.rgb.shape == photo.rgb.shape
    assert np.abs(back.rgb.astype(int) - photo.rgb.astype(int)).mean() < 3


@pytest.mark.integration
def test_modes_come_out_right(dev: Path, tmp_path: Path) -> None:
    base = _face_photo(dev).resize((200, 215))
    # grayscale, palette, alpha, CMYK, 16-bit
    base.convert("L").save(tmp_path / "gray.png")
    base.convert("P").save(tmp_path / "pal.png")
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(tmp_path / "alpha.png")
    base.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    arr16 = (np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(arr16).save(tmp_path / "g16.png")
    for name in ("gray.png", "pal.png", "alpha.png", "cmyk.jpg", "g16.png"):
        photo = read_photo(tmp_path / name)
        assert photo.rgb.shape[:2] == (215, 200), name
        out = write_photo(photo, tmp_path / f"out_{name}")
        back = read_photo(out)
        assert back.rgb.shape[:2] == (215, 200), name
        ref = np.asarray(Image.open(tmp_path / name).convert("RGB"), dtype=np.int32)
        if name != "g16.png":  # colours as the source means them
            assert np.abs(back.rgb8().astype(np.int32) - ref).mean() < 3, name
    assert read_photo(tmp_path / "out_alpha.png").alpha is not None
    assert read_photo(tmp_path / "out_g16.png").rgb.dtype == np.uint16


def _bomb_png() -> bytes:
    import struct
    import zlib

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")


def bad_inputs(dev: Path, folder: Path) -> dict[str, str]:
    """Write the bad-input set into ``folder``; returns file name → expected words in the error."""
    good = (dev / "photos" / "lady.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not a photo\n")
    (folder / "bomb.png").write_bytes(_bomb_png())
    frames = [Image.new("RGB", (40, 40), c) for c in ("red", "blue")]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    return {
        "truncated.jpg": "truncated",
        "zero.jpg": "empty",
        "text.jpg": "not a supported image",
        "bomb.png": "decompression bomb",
        "anim.gif": "not supported",
    }


@pytest.mark.integration
def test_bad_inputs_give_one_line_errors(dev: Path, tmp_path: Path) -> None:
    expected = bad_inputs(dev, tmp_path)
    for name, words in expected.items():
        with pytest.raises(PhotoError) as e:
            read_photo(tmp_path / name)
        msg = str(e.value)
        assert "\n" not in msg and name in msg and words in msg, msg


@pytest.mark.unit
def test_metadata_policy_rejects_unknown() -> None:
    with pytest.raises(ValueError):
        apply_metadata_policy(None, None, "sometimes")  # type: ignore[arg-type]


@pytest.mark.unit
def test_exif_bytes_roundtrip_without_gps() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG", exif=_exif_with_gps().tobytes())
    photo_exif = Image.open(io.BytesIO(buf.getvalue())).getexif().tobytes()
    exif, _ = apply_metadata_policy(photo_exif, None, "strip-location")
    e = Image.Exif()
    e.load(exif)
    assert not e.get_ifd(GPS_IFD)


def _two_image_heic(path) -> None:
    import pillow_heif
    from PIL import Image

    h = pillow_heif.HeifFile()
    h.add_from_pillow(Image.new("RGB", (64, 48), (200, 100, 50)))
    h.add_from_pillow(Image.new("RGB", (32, 32), (20, 100, 250)))
    h.save(str(path), quality=90)


@pytest.mark.unit
def test_d15_the_images_a_heic_drops_are_said(tmp_path) -> None:
    from fawkes_engine.photo_io import read_photo

    _two_image_heic(tmp_path / "burst.heic")
    photo = read_photo(tmp_path / "burst.heic")
    assert photo.dropped == "only the primary image is cloaked and written; dropped: 1 other image"
    assert photo.with_pixels(photo.rgb).dropped == photo.dropped


@pytest.mark.system
def test_d15_fawkes_cloak_says_what_it_dropped_in_the_log_and_the_report(tmp_path) -> None:
    import json
    import subprocess
    import sys

    _two_image_heic(tmp_path / "burst.heic")
    r = subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "cloak", str(tmp_path / "burst.heic"), "--report", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "burst.heic: only the primary image is cloaked and written; dropped: 1 other image" in r.stderr, r.stderr
    (entry,) = json.loads((tmp_path / "r.json").read_text())["files"]
    assert "1 other image" in entry["dropped"]
