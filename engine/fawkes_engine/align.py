"""Face alignment: 5-point similarity transforms and a differentiable warp.

Why differentiable: the cloak is optimized on full-resolution pixels, and the only way
from those pixels to an extractor is the alignment warp. :func:`warp_faces` is built from
an antialiased resize + ``grid_sample`` so gradients flow back to every source pixel; the
resize first brings the source near the crop's scale, so that a large face is not sampled
through a sparse grid of pixels (which would both alias the extractor's view and
concentrate the cloak on a dot or block pattern).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# Below this scale (crop pixels per source pixel) the source is first resized with antialiasing.
DOWNSCALE_BELOW = 0.75
# ... and below this one the resize's gradient is the approximate adjoint (_Downscale), which agrees
# with the exact one there (docs/decisions.md, "The resize's approximate adjoint")
APPROXIMATE_ADJOINT_BELOW = 0.6


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` points to ``dst`` (Umeyama).

    Returns the 2×3 matrix ``M`` with ``dst ≈ M @ [x, y, 1]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    r = u @ np.diag(d) @ vt
    var_s = (s_c**2).sum() / len(src)
    scale = (sig * d).sum() / var_s
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]])


def with_origin(m: np.ndarray, x0: float, y0: float) -> np.ndarray:
    """``m`` for a sub-image whose top-left pixel is the source's (x0, y0): the same crop from a slice."""
    out = m.copy()
    out[:, 2] += m[:, 0] * x0 + m[:, 1] * y0
    return out


def invert_affine(m: np.ndarray) -> np.ndarray:
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def transform_scale(m: np.ndarray) -> float:
    """How many crop pixels one source pixel becomes (≈ crop size / face size)."""
    return float(math.sqrt(abs(np.linalg.det(m[:, :2]))))


def warp_faces(images: torch.Tensor, matrices: torch.Tensor | np.ndarray, size: int, prescale: float | None = None) -> torch.Tensor:
    """Differentiably warp ``images`` (N×C×H×W) into N×C×size×size crops.

    ``matrices`` (N×2×3) map source pixel coordinates to crop pixel coordinates, as for
    ``cv2.warpAffine``. Pixel centres follow OpenCV's convention (integer coordinates).
    Areas outside the source are filled with the nearest border pixel. ``prescale``: shrink the
    source by this factor (antialiased) before sampling it bilinearly, as a tracker's resampler
    does (1: none, as ``cv2.warpAffine``; dlib's pyramid: its level's scale); None: to about the
    crop's scale whenever the crop is much smaller.
    """
    if isinstance(matrices, np.ndarray):
        matrices = torch.as_tensor(matrices, dtype=images.dtype, device=images.device)
    n, _, h, w = images.shape
    out: list[torch.Tensor] = []
    for i in range(n):
        m = matrices[i].detach().cpu().double().numpy()
        scale = transform_scale(m)
        img = images[i : i + 1]
        shrink = scale if prescale is None else prescale
        if scale < DOWNSCALE_BELOW if prescale is None else prescale < 1.0:
            # only the part of the source the crop sees (plus the resize filter's reach) is resized:
            # a large photo's face window is several times the crop's footprint
            x0, y0, x1, y1 = footprint(m, size, h, w)
            if (x0, y0, x1, y1) != (0, 0, w, h):  # (a slice's backward pass is a full-size zero gradient)
                img = img[..., y0:y1, x0:x1]
                m = with_origin(m, x0, y0)
            # Antialiased resize to about the crop's scale first: its backward pass spreads each
            # crop pixel's gradient smoothly over the source pixels it summarizes.
            hh, ww = img.shape[-2:]
            nh, nw = max(2, round(hh * shrink)), max(2, round(ww * shrink))
            img = downscale(img, (nh, nw))
            fy, fx = nh / hh, nw / ww
            # resized pixel j has its centre at source coordinate (j + 0.5) / f − 0.5
            pre = np.array([[1 / fx, 0.0, 0.5 / fx - 0.5], [0.0, 1 / fy, 0.5 / fy - 0.5], [0.0, 0.0, 1.0]])
            m = (np.vstack([m, [0, 0, 1]]) @ pre)[:2]
        ph, pw = img.shape[-2:]
        inv = invert_affine(m)  # crop pixel -> source pixel
        # grid_sample with align_corners=False: normalized x = (2*px + 1)/W - 1.
        to_norm_src = np.array([[2.0 / pw, 0, 1.0 / pw - 1], [0, 2.0 / ph, 1.0 / ph - 1], [0, 0, 1]])
        from_norm_dst = np.array([[size / 2.0, 0, size / 2.0 - 0.5], [0, size / 2.0, size / 2.0 - 0.5], [0, 0, 1]])
        theta = to_norm_src @ np.vstack([inv, [0, 0, 1]]) @ from_norm_dst
        theta_t = torch.as_tensor(theta[:2], dtype=images.dtype, device=images.device).unsqueeze(0)
        grid = F.affine_grid(theta_t, [1, images.shape[1], size, size], align_corners=False)
        out.append(F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False))
    return torch.cat(out, 0)


def downscale(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize (down); with a gradient, the fast approximate adjoint below."""
    if torch.is_grad_enabled() and img.requires_grad and size[0] * size[1] <= APPROXIMATE_ADJOINT_BELOW**2 * img.shape[-2] * img.shape[-1]:
        return _Downscale.apply(img, size)
    return F.interpolate(img, size=size, mode="bilinear", antialias=True, align_corners=False)


class _Downscale(torch.autograd.Function):
    """The antialiased resize, whose backward pass is a bilinear upsample scaled by the area ratio.

    Why: PyTorch's CPU backward of the antialiased resize is slow, and runs for every crop of
    every optimizer step. Its exact adjoint spreads each output pixel's gradient over the source
    pixels under a triangle of the same width that bilinear upsampling uses, with weights
    normalized per output pixel (≈ the area ratio); used below APPROXIMATE_ADJOINT_BELOW, where
    it agrees with the exact gradient (docs/decisions.md, "The resize's approximate adjoint").
    Only the optimizer's gradient uses it; the forward pass (what every extractor sees) is
    the exact resize.
    """

    @staticmethod
    def forward(ctx, img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:  # type: ignore[override]
        ctx.source = tuple(img.shape[-2:])
        return F.interpolate(img, size=size, mode="bilinear", antialias=True, align_corners=False)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        hh, ww = ctx.source
        nh, nw = grad.shape[-2:]
        return F.interpolate(grad, size=(hh, ww), mode="bilinear", align_corners=False).mul_(nh * nw / (hh * ww)), None


def footprint(m: np.ndarray, size: int, h: int, w: int) -> tuple[int, int, int, int]:
    """The source pixels (x0, y0, x1, y1) that :func:`warp_faces` reads for one crop of an h×w image.

    Warping just this rectangle gives the same crop: callers that hold a larger image
    (the cloak's face window) pass only it, so the gradient never spans the whole image.
    """
    scale = transform_scale(m)
    pad = int(math.ceil(2.0 / scale)) + 2 if scale < DOWNSCALE_BELOW else 2  # the resize filter's / bilinear reach
    return _footprint(m, size, h, w, pad)


def _footprint(m: np.ndarray, size: int, h: int, w: int, pad: int) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of the source pixels a size×size crop of ``m`` samples, grown by ``pad``, clipped."""
    inv = invert_affine(m)
    corners = np.array([[-0.5, -0.5, 1], [size - 0.5, -0.5, 1], [-0.5, size - 0.5, 1], [size - 0.5, size - 0.5, 1]]).T
    src = inv @ corners
    x0 = max(0, int(math.floor(src[0].min())) - pad)
    y0 = max(0, int(math.floor(src[1].min())) - pad)
    x1 = min(w, int(math.ceil(src[0].max())) + 1 + pad)
    y1 = min(h, int(math.ceil(src[1].max())) + 1 + pad)
    if x1 - x0 < 2 or y1 - y0 < 2:  # the crop lies outside the image: border pixels everywhere, keep all
        return 0, 0, w, h
    return x0, y0, x1, y1


def align_numpy(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """Align one face with OpenCV (inference-only paths: no gradients needed)."""
    import cv2

    m = similarity_transform(landmarks, template)
    scale = transform_scale(m)
    if scale < DOWNSCALE_BELOW:  # large faces: the same antialiased path as warp_faces
        # only the crop's footprint is converted (the same crop: see footprint), not the whole photo
        # (a 12 MP photo as float is 144 MB, for every face measured); the copy is also writable, which
        # torch.from_numpy wants (decoded photos are read-only arrays)
        x0, y0, x1, y1 = footprint(m, size, image.shape[0], image.shape[1])
        m = with_origin(m, x0, y0)
        patch = np.array(image[y0:y1, x0:x1], copy=True)
        return (
            warp_faces(torch.from_numpy(patch).permute(2, 0, 1)[None].float(), m[None], size)[0]
            .permute(1, 2, 0)
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
            .numpy()
        )
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def is_aligned_crop(shape: tuple[int, ...], size: int = 112) -> bool:
    """Pre-aligned ArcFace-style crops (e.g. the dev set's 112×112 faces) need no detection."""
    return shape[0] == size and shape[1] == size


def aligned_crop_landmarks(shape: tuple[int, ...]) -> np.ndarray:
    """Landmarks of an already-aligned ArcFace-style crop of any square size."""
    from fawkes_engine.models.spec import ARCFACE_112

    return ARCFACE_112 * (shape[1] / 112.0)


def crop_window(
    landmarks: np.ndarray, shape: tuple[int, ...], templates: list[tuple[np.ndarray, int]], scale_max: float
) -> tuple[int, int, int, int]:
    """The photo window every extractor's (diversified) crop of a face can read: the union of the crops' inverse footprints.

    ``landmarks``: the face's five points (ops take arrays, not the detector's ``Face``, so they sit below it).

    ``scale_max``: how far beyond the aligned crop a diversified view may read (1 / the smallest rescale).
    """
    h, w = shape[:2]
    xs, ys = [], []
    for template, size in templates:
        m = similarity_transform(landmarks, template)
        inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
        c = size / 2.0
        half = c * scale_max + 2
        corners = np.array([[c - half, c - half, 1], [c + half, c - half, 1], [c - half, c + half, 1], [c + half, c + half, 1]]).T
        src = inv @ corners
        xs += list(src[0])
        ys += list(src[1])
    return max(0, int(min(xs)) - 1), max(0, int(min(ys)) - 1), min(w, int(math.ceil(max(xs))) + 2), min(h, int(math.ceil(max(ys))) + 2)
