"""Refusing photos that decode "successfully" into garbage.

Why: Pillow conceals corrupt JPEG data (libjpeg only warns) and libheif conceals a damaged
HEVC stream; both hand back an image with a garbled region. A garbled face is not found
by the detector, so it would be published uncloaked. Every check here runs before the
photo is cloaked, and a failed check is a :class:`~fawkes_engine.photo_io.PhotoError` with a
one-line reason, never a retry.

- JPEG: a strict libjpeg-turbo decode (``simplejpeg``, ``strict=True``) turns libjpeg's
  "corrupt data" warnings into errors. It decodes at 1/8 scale, so it costs a fraction of
  the real decode.
- HEIC/HEIF: the HEVC decoder reports nothing, so the decoded image is compared with the
  file's own thumbnail (coded separately by the camera). A damaged tile disagrees with the
  thumbnail by far more than coding noise does. A file without a thumbnail cannot be
  checked this way and is accepted (see docs/decisions.md).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Mean absolute difference (0–255) of a 16×16 block at thumbnail scale above which the
# primary image and its thumbnail are taken to disagree; docs/decisions.md has the measurements.
THUMBNAIL_BLOCK_LIMIT = 40.0
_BLOCK = 16


class CorruptData(ValueError):
    """The data decodes only with errors concealed; ``str()`` says how."""


def check_jpeg(data: bytes) -> None:
    """Raise :class:`CorruptData` if libjpeg reports corrupt or missing data anywhere in the stream."""
    import simplejpeg

    try:
        _h, _w, colorspace, _sub = simplejpeg.decode_jpeg_header(data)
        # CMYK can only be decoded as CMYK; everything else to grey (the cheapest output)
        simplejpeg.decode_jpeg(data, colorspace="CMYK" if colorspace in ("CMYK", "YCCK") else "GRAY", min_factor=8, strict=True)
    except ValueError as e:
        raise CorruptData(f"corrupt JPEG data ({str(e).strip().rstrip('.')})") from e


def check_heif_against_thumbnail(data: bytes, primary: Image.Image) -> None:
    """Raise :class:`CorruptData` when the decoded primary image disagrees with the file's thumbnail."""
    import pillow_heif

    try:
        heif = pillow_heif.open_heif(io.BytesIO(data))
        image = heif[heif.primary_index] if hasattr(heif, "primary_index") else heif[0]
        if not image.info.get("thumbnails"):
            return
        thumb = image.get_thumbnail(0).to_pillow().convert("RGB")
    except Exception as e:  # the thumbnail itself does not decode: the file is damaged
        raise CorruptData(f"damaged HEIF data (its thumbnail does not decode: {e})") from e
    if thumb.size[0] < _BLOCK * 2 or thumb.size[1] < _BLOCK * 2:
        return
    shown = np.asarray(primary.convert("RGB").resize(thumb.size, Image.Resampling.BOX), np.float32)
    diff = np.abs(shown - np.asarray(thumb, np.float32)).mean(axis=2)
    h, w = (diff.shape[0] // _BLOCK) * _BLOCK, (diff.shape[1] // _BLOCK) * _BLOCK
    blocks = diff[:h, :w].reshape(h // _BLOCK, _BLOCK, w // _BLOCK, _BLOCK).mean(axis=(1, 3))
    worst = float(blocks.max())
    if worst > THUMBNAIL_BLOCK_LIMIT:
        raise CorruptData(f"damaged HEVC data (the decoded image disagrees with the file's own thumbnail: {worst:.0f}/255 in one region)")
