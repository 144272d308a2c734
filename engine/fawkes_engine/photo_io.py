"""Reading and writing photos without losing what makes them the user's photos.

Why this module is strict: a cloaked copy replaces the original wherever it is shared, so
it must look the same (orientation applied, colour profile kept, no visible recompression)
and must not leak more than the user chose (metadata policy). Anything we cannot decode
faithfully — truncated files, decompression bombs, animations, non-images — is refused
with a one-line reason instead of being written out half-right.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageCms, ImageOps

from fawkes_engine.integrity import CorruptData, check_heif_against_thumbnail, check_jpeg

try:  # HEIC/HEIF/AVIF through libheif
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except Exception:  # pragma: no cover - optional at import time
    HEIF_AVAILABLE = False

MetadataPolicy = Literal["strip-location", "keep", "strip-all"]
METADATA_POLICIES: tuple[str, ...] = ("strip-location", "keep", "strip-all")

# 200 MP: beyond any phone or consumer camera; more is treated as a decompression bomb.
MAX_PIXELS = 200_000_000
SUPPORTED_FORMATS = {"JPEG", "PNG", "WEBP", "TIFF", "HEIF", "MPO"}
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".heif"}
_GPS_IFD = 0x8825
_ORIENTATION = 0x0112
# XMP properties that locate the photo.
_XMP_LOCATION = re.compile(
    rb"""\s(?:exif:GPS\w+|photoshop:(?:City|State|Country)|Iptc4xmpCore:(?:Location|CountryCode)|"""
    rb"""Iptc4xmpExt:(?:LocationShown|LocationCreated)|xmp:Location)\s*=\s*"[^"]*"|"""
    rb"""<(exif:GPS\w+|photoshop:(?:City|State|Country)|Iptc4xmpCore:(?:Location|CountryCode)|"""
    rb"""Iptc4xmpExt:(?:LocationShown|LocationCreated))\b[^>]*>.*?</\1>""",
    re.DOTALL,
)


class PhotoError(Exception):
    """A photo that cannot be read or written faithfully; ``str()`` is a one-line reason."""


def max_value(pixels: np.ndarray) -> int:
    """Full scale of a pixel array: 16-bit sources are kept as uint16, everything else is 8-bit."""
    return 65535 if pixels.dtype == np.uint16 else 255


@dataclass
class Photo:
    """A decoded photo: upright RGB pixels plus everything needed to write it back alike."""

    rgb: np.ndarray  # H×W×3, uint8 or uint16 (16-bit sources), orientation applied
    format: str  # PIL format name of the source (JPEG, PNG, WEBP, TIFF, HEIF)
    path: Path | None = None
    alpha: np.ndarray | None = field(default=None, repr=False)
    icc: bytes | None = field(default=None, repr=False)
    exif: bytes | None = field(default=None, repr=False)
    xmp: bytes | None = field(default=None, repr=False)
    dpi: tuple[float, float] | None = None
    source_mode: str = "RGB"
    # what the file held besides the image that is cloaked and written (other images of a HEIC, an MPO's
    # second picture, a TIFF's other pages, thumbnails, depth maps): dropped, never written; said here
    dropped: str | None = None

    @property
    def max_value(self) -> int:
        return max_value(self.rgb)

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]

    def rgb8(self) -> np.ndarray:
        """8-bit view for detection."""
        if self.rgb.dtype == np.uint8:
            return self.rgb
        return (self.rgb.astype(np.float32) / 257.0).round().astype(np.uint8)

    def with_pixels(self, rgb: np.ndarray) -> Photo:
        return Photo(rgb, self.format, self.path, self.alpha, self.icc, self.exif, self.xmp, self.dpi, self.source_mode, self.dropped)


_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}


def sniff_format(head: bytes) -> str | None:
    """The image format a file's first 32 bytes announce, or None: lets a caller refuse a non-image unread."""
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIF"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"  # recognized so that it is refused by name
    if head[:2] == b"BM":
        return "BMP"
    return None


def _fail(path: Path | str | None, reason: str) -> PhotoError:
    return PhotoError(f"{path}: {reason}" if path else reason)


def read_photo(path: str | Path) -> Photo:
    """Decode a photo file. Raises :class:`PhotoError` with a clear reason for anything unusable."""
    path = Path(path)
    if path.is_dir():
        raise _fail(path, "is a directory, not a photo")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise _fail(path, f"cannot be read ({e.strerror or e})") from e
    if size == 0:
        raise _fail(path, "is empty (0 bytes)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _fail(path, f"cannot be read ({e.strerror or e})") from e
    return decode_photo(data, path)


def decode_photo(data: bytes, path: Path | None = None) -> Photo:
    if not data:
        raise _fail(path, "is empty (0 bytes)")
    old_max = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                im = Image.open(io.BytesIO(data))
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                raise _fail(path, f"refused as a decompression bomb ({e})") from e
            except Exception as e:
                raise _fail(path, "is not a supported image (unrecognized data)") from e
            fmt = im.format or ""
            if fmt not in SUPPORTED_FORMATS:
                raise _fail(path, f"format {fmt or 'unknown'} is not supported (JPEG, PNG, WebP, TIFF, HEIC)")
            if getattr(im, "n_frames", 1) > 1 and fmt not in ("MPO", "HEIF", "TIFF"):
                raise _fail(path, f"animated {fmt} ({getattr(im, 'n_frames', 1)} frames) is not supported")
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise _fail(path, f"refused as a decompression bomb ({w}×{h} pixels > {MAX_PIXELS})")
            try:
                im.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                raise _fail(path, f"refused as a decompression bomb ({e})") from e
            except OSError as e:
                raise _fail(path, f"is truncated or corrupt ({e})") from e
            except Exception as e:
                raise _fail(path, f"could not be decoded ({e})") from e
            try:
                if fmt in ("JPEG", "MPO"):
                    check_jpeg(data)
                elif fmt == "HEIF":
                    check_heif_against_thumbnail(data, im)
            except CorruptData as e:
                raise _fail(path, f"is corrupt: {e}") from e
    finally:
        Image.MAX_IMAGE_PIXELS = old_max
    info = im.info
    dropped = _dropped_parts(im, fmt)
    icc = info.get("icc_profile") or None
    exif_bytes = _exif_bytes(im)
    xmp = info.get("xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    dpi = info.get("dpi")
    source_mode = im.mode
    try:
        im = ImageOps.exif_transpose(im)  # type: ignore[assignment]
    except Exception:
        pass  # malformed orientation tag: keep pixels as stored
    rgb, alpha, icc = _to_rgb(im, icc, path)
    return Photo(rgb, "JPEG" if fmt == "MPO" else fmt, path, alpha, icc, exif_bytes, xmp, dpi, source_mode, dropped)


def _dropped_parts(im: Image.Image, fmt: str) -> str | None:
    """What of the file is not cloaked and so not written (only the primary image is), in words; None if nothing.

    Why dropped rather than carried: an image that is not cloaked (a burst's other frame, a
    thumbnail, a stereo pair's other half) would publish the face uncloaked.
    """
    parts = []
    others = getattr(im, "n_frames", 1) - 1
    if others > 0:
        kind = {"HEIF": "image", "MPO": "picture", "TIFF": "page"}.get(fmt, "frame")
        parts.append(f"{others} other {kind}{'s' if others > 1 else ''}")
    for key, what in (("thumbnails", "thumbnail"), ("depth_images", "depth map")):
        n = len(im.info.get(key) or [])
        if n:
            parts.append(f"{n} {what}{'s' if n > 1 else ''}")
    if not parts:
        return None
    return f"only the primary image is cloaked and written; dropped: {', '.join(parts)}"


def _exif_bytes(im: Image.Image) -> bytes | None:
    try:
        exif = im.getexif()
    except Exception:
        return None
    if not exif and not exif.get_ifd(_GPS_IFD):
        return None
    try:
        return exif.tobytes()
    except Exception:
        return None


def _rgb_array(im: Image.Image, chunk_bytes: int = 1 << 24) -> np.ndarray:
    """A writable H×W×3 copy of an RGB image, filled in row bands.

    Why: ``np.asarray(im).copy()`` holds three copies at once (Pillow's, the bytes it
    exports, numpy's), +430 MB for a 48 MP photo; bands keep it to two plus 16 MB.
    """
    w, h = im.size
    out = np.empty((h, w, 3), dtype=np.uint8)
    rows = max(1, chunk_bytes // (3 * w))
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        out[y0:y1] = np.asarray(im.crop((0, y0, w, y1)), dtype=np.uint8)
    return out


def _to_rgb(im: Image.Image, icc: bytes | None, path: Path | None) -> tuple[np.ndarray, np.ndarray | None, bytes | None]:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.int64)
        arr16 = np.clip(arr, 0, 65535).astype(np.uint16)
        return np.repeat(arr16[:, :, None], 3, axis=2), None, icc
    if mode == "CMYK":
        if icc:
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                dst = ImageCms.createProfile("sRGB")
                im = ImageCms.profileToProfile(im, src, dst, outputMode="RGB") or im
                icc = None  # pixels are now sRGB; writing the CMYK profile would be wrong
            except Exception:
                im = im.convert("RGB")
                icc = None
        else:
            im = im.convert("RGB")
        return np.asarray(im, dtype=np.uint8).copy(), None, icc
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        arr = np.asarray(rgba, dtype=np.uint8)
        return arr[:, :, :3].copy(), arr[:, :, 3].copy(), icc
    if mode == "RGB":
        return _rgb_array(im), None, icc
    if mode in ("RGB;16", "RGBA;16"):  # pragma: no cover - Pillow exposes these rarely
        raise _fail(path, f"pixel mode {mode} is not supported")
    try:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy(), None, icc
    except Exception as e:
        raise _fail(path, f"pixel mode {mode} could not be converted to RGB ({e})") from e


def apply_metadata_policy(exif: bytes | None, xmp: bytes | None, policy: MetadataPolicy) -> tuple[bytes | None, bytes | None]:
    """Return (exif, xmp) as they should be written: orientation always reset to 1."""
    if policy not in METADATA_POLICIES:
        raise ValueError(f"unknown metadata policy {policy!r}")
    if policy == "strip-all":
        return None, None
    out_exif = None
    if exif:
        e = Image.Exif()
        try:
            e.load(exif)
        except Exception:
            e = Image.Exif()
        if _ORIENTATION in e:
            e[_ORIENTATION] = 1
        if policy == "strip-location":
            if _GPS_IFD in e:
                del e[_GPS_IFD]
        out_exif = e.tobytes()
    out_xmp = xmp
    if xmp and policy == "strip-location":
        out_xmp = _XMP_LOCATION.sub(b"", xmp)
    return out_exif, out_xmp


def output_format(photo: Photo) -> str:
    return photo.format if photo.format in ("JPEG", "PNG", "WEBP", "TIFF", "HEIF") else "PNG"


JPEG_OPTIMIZE_MAX_PIXELS = 24_000_000


def encode_photo(photo: Photo, policy: MetadataPolicy = "strip-location", jpeg_quality: int = 95, fmt: str | None = None) -> bytes:
    """Encode pixels + kept metadata in the source's format (or ``fmt``)."""
    fmt = fmt or output_format(photo)
    exif, xmp = apply_metadata_policy(photo.exif, photo.xmp, policy)
    rgb = photo.rgb
    if rgb.dtype == np.uint16:
        if fmt in ("PNG", "TIFF"):  # 16-bit sources are grayscale in Pillow: keep the cloak's luminance
            gray = rgb.astype(np.float32).mean(axis=2).round().astype(np.uint16)
            im = Image.fromarray(gray)  # uint16 → mode I;16
        else:
            im = Image.fromarray((rgb.astype(np.float32) / 257.0).round().astype(np.uint8), "RGB")
    else:
        im = Image.fromarray(rgb, "RGB")
    if photo.alpha is not None and fmt in ("PNG", "WEBP", "TIFF", "HEIF"):
        im = im.convert("RGBA")
        im.putalpha(Image.fromarray(photo.alpha, "L"))
    kwargs: dict = {}
    if photo.icc:
        kwargs["icc_profile"] = photo.icc
    if exif:
        kwargs["exif"] = exif
    if xmp and fmt in ("JPEG", "PNG", "WEBP", "TIFF", "HEIF"):
        kwargs["xmp"] = xmp
    if photo.dpi and fmt in ("JPEG", "PNG", "TIFF"):
        kwargs["dpi"] = photo.dpi
    if fmt == "JPEG":
        # Huffman optimization (≈ 8 % smaller files) makes libjpeg buffer every DCT coefficient of the
        # image, 6 bytes a pixel at 4:4:4: 288 MB for a 48 MP photo, which was the cloak's memory peak
        optimize = rgb.shape[0] * rgb.shape[1] <= JPEG_OPTIMIZE_MAX_PIXELS
        kwargs.update(quality=max(95, jpeg_quality), subsampling=0, optimize=optimize)
    elif fmt == "WEBP":
        kwargs.update(quality=95, method=4)
    elif fmt == "HEIF":
        kwargs.update(quality=95)
    elif fmt == "PNG":
        kwargs.update(optimize=False, compress_level=6)
    elif fmt == "TIFF":
        kwargs.update(compression="tiff_deflate")
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


_SUFFIX_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".heic": "HEIF",
    ".heif": "HEIF",
}


def write_photo(photo: Photo, path: str | Path, policy: MetadataPolicy = "strip-location", jpeg_quality: int = 95) -> Path:
    """Encode in the format the file name says (else the source's), then write atomically
    (temporary file + rename) so no partial file is ever visible."""
    import os
    import tempfile

    path = Path(path)
    data = encode_photo(photo, policy, jpeg_quality, _SUFFIX_FORMATS.get(path.suffix.lower()))
    fd, tmp = tempfile.mkstemp(prefix=".fawkes-", suffix=".part", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a photo for sharing should read like any other file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def extension_for(fmt: str) -> str:
    return {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "HEIF": ".heic"}.get(fmt, ".png")
