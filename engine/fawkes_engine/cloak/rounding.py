"""Holding a cloak to its budget: the projection after every step, and the rounding at the end.

During the optimization, :func:`shrink_into_budget` scales a face's change back inside ρ
after each Adam step (the penalty alone oscillates around ρ). At the end the face is rounded
to the photo's levels inside the budget and what is written is measured. Two limits hold
for every face written:

- **DSSIM ≤ ρ at the worst scale** of the face box's pyramid (:mod:`fawkes_engine.visibility.scales`);
- **SSIMULACRA2 ≥ the mode's floor** on the face box at the photo's resolution. DSSIM at
  the crop scale can be met by a change that still reads as shading or creases on a large,
  clean face; SSIMULACRA2 (fitted to human ratings, multi-scale down to a 1/32 of the face)
  sees it. The optimizer's change is scaled down by the largest factor c ≤ 1 that meets both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from fawkes_engine.cloak.jobs import FaceJob, FaceResult
from fawkes_engine.cloak.state import FaceState
from fawkes_engine.cloak.window import to_unit
from fawkes_engine.photo_io import max_value
from fawkes_engine.visibility.blemish import largest_jnd_ratio, largest_patch_change
from fawkes_engine.visibility.scales import ScaleDSSIM, measure_scales, to_rgb8
from fawkes_engine.visibility.ssimulacra2 import Ssimulacra2Reference
from fawkes_engine.working_scale import lift


@dataclass
class Rounded:
    pixels: np.ndarray  # the face box, in the photo's dtype
    scales: ScaleDSSIM  # its exact DSSIM per scale
    ssimulacra2: float
    kept: float  # c: the share of the optimized change that was written
    blemish: float = 0.0  # the largest 3×3 mean |Δluma| of what is written (levels)
    blemish_jnd: float = 0.0  # the same windows in JNDs of the original


class Rounding:
    """δ = x − round(orig) at scale c, rounded to the photo's levels, and its measurements.

    ``x`` and ``orig`` (1×C×H×W in [0, 1]) are overwritten. ``original``: the face box's pixels
    as the photo holds them. ``core``: the detector's own box inside it, held to the budget too
    (:func:`measure_scales`).
    """

    def __init__(
        self,
        x: torch.Tensor,
        orig: torch.Tensor,
        max_value: int,
        original: np.ndarray,
        core: tuple[int, int, int, int] | None = None,
        blemish_cap: float = 0.0,
    ) -> None:
        self.max_value = max_value
        self.core = core
        self.blemish_cap = blemish_cap  # the largest 3×3 mean |Δluma| (levels) the written face may have; 0: none
        self.dtype = original.dtype
        self.original = original
        # in place: on a 48 MP photo each is ~40 MB, and this step's temporaries were the process's peak
        self.base = orig.mul_(max_value).round_()
        self.delta = x.mul_(max_value).sub_(self.base)
        self.base_unit = self.base / max_value
        self.reference: Ssimulacra2Reference | None = None

    def levels(self, c: float) -> torch.Tensor:
        """The face box with δ at scale c, rounded to the photo's levels (in [0, 1])."""
        return torch.add(self.base, self.delta, alpha=c).round_().clamp_(0, self.max_value).div_(self.max_value)

    def measure(self, q: torch.Tensor) -> ScaleDSSIM:
        return measure_scales(q, self.base_unit, core=self.core)

    def at(self, c: float) -> tuple[torch.Tensor, ScaleDSSIM]:
        q = self.levels(c)
        return q, self.measure(q)

    def array(self, q: torch.Tensor) -> np.ndarray:
        return (q * self.max_value).round_()[0].permute(1, 2, 0).cpu().numpy().astype(self.dtype)

    def blemish(self, q: torch.Tensor) -> float:
        """The largest 3×3 mean |Δluma| of rounded face box ``q``, in 0–255 levels."""
        return float(largest_patch_change(self.base_unit, q)[0]) if min(q.shape[-2:]) >= 3 else 0.0

    def blemish_jnd(self, q: torch.Tensor) -> float:
        """The same windows of ``q`` in just-noticeable differences of the original."""
        return float(largest_jnd_ratio(self.base_unit, q)[0]) if min(q.shape[-2:]) >= 3 else 0.0

    def ssimulacra2(self, q: torch.Tensor) -> float:
        if self.reference is None:  # the original's side, once for every scale c searched
            self.reference = Ssimulacra2Reference(to_rgb8(self.original))
        return self.reference.score(to_rgb8(self.array(q)))


@torch.no_grad()
def round_within_budget(
    x: torch.Tensor,
    orig: torch.Tensor,
    max_value: int,
    budget: float,
    floor: float,
    original: np.ndarray,
    core: tuple[int, int, int, int] | None = None,
    blemish_cap: float = 0.0,
) -> Rounded:
    """Round face box ``x`` (1×C×H×W in [0, 1]; ``orig`` its original) so that both limits hold.

    DSSIM: rounding can push a perturbation just over the budget; then a smaller scale c of δ
    whose rounded result fits is searched for, by interpolating DSSIM linearly in c² (it is
    about quadratic in δ) between the best scale inside the budget and the smallest outside
    it, with a bisection step after every overshoot: usually one more evaluation, where plain
    bisection took ten. (Uniform shrinking before rounding would not do: rounding can
    collapse a small δ to nothing.) A margin of 0.02 % keeps float32 summation order from
    tipping a result over the budget in another implementation's sum.

    Floor: if SSIMULACRA2 of that result is under ``floor`` (0: no floor), c is searched
    further down until it lands in [floor, floor + 1): SSIMULACRA2 rises as δ shrinks, about
    linearly in c, so each guess interpolates between the bracket's ends, and a guess that
    falls under the floor is followed by a bisection step, as in the DSSIM search.

    Blemish: with ``blemish_cap``, c is then lowered in proportion until no 3×3 window's mean
    |Δluma| exceeds the cap (the measure is about linear in c).

    The arguments are :class:`Rounding`'s (``x`` and ``orig`` are overwritten).
    """
    r = Rounding(x, orig, max_value, original, core, blemish_cap)
    c, q, m, s2, moved = _within_budget_and_floor(r, budget, floor)
    if moved:  # the floor or the blemish cap moved c: the DSSIM of what is written, measured once (none for the original)
        m = r.measure(q) if c > 0 else ScaleDSSIM({w: 0.0 for w in m.per_scale})
    return Rounded(r.array(q), m, s2, c, r.blemish(q), r.blemish_jnd(q))


@torch.no_grad()
def kept_within_budget(r: Rounding, budget: float, floor: float) -> float:
    """The share c that :func:`round_within_budget` would keep, without measuring or building what it would write."""
    return _within_budget_and_floor(r, budget, floor)[0]


def _within_budget_and_floor(r: Rounding, budget: float, floor: float) -> tuple[float, torch.Tensor, ScaleDSSIM, float, bool]:
    """(c, its rounded face box, the DSSIM search's measurement, SSIMULACRA2 at c, whether the floor moved c).

    The floor's search reads SSIMULACRA2 alone, so its steps are not measured for DSSIM
    (on a large face each measurement is a full-resolution pyramid).
    """
    c, q, m = _within_dssim(r, budget * (1 - 2e-4))
    c, q, capped = _within_blemish(r, c, q)
    s2 = r.ssimulacra2(q)
    if not (floor > 0 and s2 < floor and c > 0):
        return c, q, m, s2, capped
    lo, hi = 0.0, c  # lo meets the floor (c = 0 is the original), hi does not
    lo_s, hi_s = 100.0, s2
    best = (r.base_unit, 100.0)
    bisect = False
    for _ in range(7):
        if bisect:  # the last guess fell under the floor: halving the bracket always progresses
            mid = (lo + hi) / 2
        else:  # SSIMULACRA2 falls about linearly in c: aim at the middle of the accepted window
            frac = min(max((lo_s - floor - 0.5) / max(lo_s - hi_s, 1e-9), 0.05), 0.95)
            mid = lo + (hi - lo) * frac
        qm = r.levels(mid)
        sm = r.ssimulacra2(qm)
        if sm >= floor:
            lo, lo_s, best, bisect = mid, sm, (qm, sm), False
            if sm < floor + 1.0:
                break
        else:
            hi, hi_s, bisect = mid, sm, True
    return lo, best[0], m, best[1], True


def _within_blemish(r: Rounding, c: float, q: torch.Tensor) -> tuple[float, torch.Tensor, bool]:
    """(c, its rounded face box, whether c was lowered) so that the largest window change is within the cap."""
    if r.blemish_cap <= 0 or c <= 0:
        return c, q, False
    moved = False
    for _ in range(6):
        b = r.blemish(q)
        if b <= r.blemish_cap:
            break
        c = c * r.blemish_cap * 0.97 / b
        q, moved = r.levels(c), True
    else:
        c, q = 0.0, r.base_unit  # rounding kept it over: write the original rather than a blemish
    return c, q, moved


def _within_dssim(r: Rounding, limit: float) -> tuple[float, torch.Tensor, ScaleDSSIM]:
    q, m = r.at(1.0)
    d = m.worst
    if d <= limit:
        return 1.0, q, m
    lo, hi = 0.0, 1.0  # scales of δ inside and outside the budget
    lo_d, hi_d = 0.0, d
    best = (0.0, r.base_unit, ScaleDSSIM({w: 0.0 for w in m.per_scale}))
    bisect = False
    for _ in range(14):
        if bisect:
            # the interpolation overshot: rounding makes DSSIM a step function of c when δ is a level
            # or two (few optimizer steps), far from quadratic; halving the bracket always progresses
            c = (lo + hi) / 2
        else:
            frac = min(max((limit * 0.995 - lo_d) / max(hi_d - lo_d, 1e-12), 0.05), 0.95)
            c = math.sqrt(lo * lo + (hi * hi - lo * lo) * frac)
        q, m = r.at(c)
        d = m.worst
        if d <= limit:
            lo, lo_d, best, bisect = c, d, (c, q, m), False
            if d >= limit * 0.98:
                break
        else:
            hi, hi_d, bisect = c, d, True
        if hi - lo < 1e-3:
            break
    return best


Box = tuple[int, int, int, int]


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def core_of(box: tuple[float, float, float, float], region: Box) -> Box:
    """The detector's box (x, y, w, h in the photo) in the face box's own coordinates, clipped to it."""
    x, y, w, h = box
    rx0, ry0, rx1, ry1 = region
    x0, y0 = max(rx0, int(x)), max(ry0, int(y))
    x1, y1 = min(rx1, int(math.ceil(x + w))), min(ry1, int(math.ceil(y + h)))
    return x0 - rx0, y0 - ry0, max(x0, x1) - rx0, max(y0, y1) - ry0


def _add_scaled(out: np.ndarray, deltas: list[np.ndarray | None], regions: list[Box], scale: list[float], mv: int) -> np.ndarray:
    """``out`` with every crowded face's change added at its scale, rounded and clipped as it will be written."""
    total = out.astype(np.float32)
    for i, d in enumerate(deltas):
        if d is not None:
            x0, y0, x1, y1 = regions[i]
            total[y0:y1, x0:x1] += scale[i] * d
    return np.clip(np.round(total), 0, mv).astype(out.dtype)


def _measure_box(image: np.ndarray, composed: np.ndarray, region: Box, core: Box | None, mv: int, scale: float) -> Rounded:
    x0, y0, x1, y1 = region
    a, b = image[y0:y1, x0:x1], composed[y0:y1, x0:x1]
    ta, tb = to_unit(a, mv, torch.device("cpu")), to_unit(b, mv, torch.device("cpu"))
    small = min(a.shape[:2]) < 3
    return Rounded(
        b,
        measure_scales(tb, ta, core=core),
        Ssimulacra2Reference(to_rgb8(a)).score(to_rgb8(b)),
        scale,
        0.0 if small else float(largest_patch_change(ta, tb)[0]),
        0.0 if small else float(largest_jnd_ratio(ta, tb)[0]),
    )


def compose_within_budget(
    image: np.ndarray,
    regions: list[Box],
    pixels: list[np.ndarray],
    budgets: list[float],
    floors: list[float],
    cores: list[Box | None] | None = None,
) -> tuple[np.ndarray, list[Rounded | None]]:
    """The photo with every face's change written in, each face box still within its budget and floor.

    Why: faces in a crowd have overlapping boxes, so one face's box also holds part of its
    neighbour's change, and each face was held to its budget alone: written together, a small
    face of a group photo went over its budget (docs/decisions.md, "Faces in a crowd").
    The changes are added, and while a box is over its budget (or under its floor), every
    change that reaches into it is scaled down. Returns the photo and each face's measurement
    on it (None for a face whose box touches no other box: it is written as it is).
    """
    out = image.copy()
    n = len(regions)
    crowded = [any(_overlaps(regions[i], regions[j]) for j in range(n) if j != i) for i in range(n)]
    for i in range(n):
        if not crowded[i]:
            x0, y0, x1, y1 = regions[i]
            out[y0:y1, x0:x1] = pixels[i]
    if not any(crowded):
        return out, [None] * n
    mv = max_value(image)
    deltas = [
        (pixels[i].astype(np.float32) - image[r[1] : r[3], r[0] : r[2]].astype(np.float32)) if crowded[i] else None
        for i, r in enumerate(regions)
    ]
    scale = [1.0] * n
    measured: dict[int, Rounded] = {}
    for _ in range(8):
        composed = _add_scaled(out, deltas, regions, scale, mv)
        over = False
        for i in range(n):
            if not crowded[i]:
                continue
            measured[i] = m_i = _measure_box(image, composed, regions[i], cores[i] if cores else None, mv, scale[i])
            m, s2 = m_i.scales, m_i.ssimulacra2
            if m.worst > budgets[i] * (1 - 2e-4) or (floors[i] > 0 and s2 < floors[i]):
                over = True
                c = min(math.sqrt(budgets[i] * 0.95 / m.worst) if m.worst > 0 else 1.0, 0.85 if s2 < floors[i] else 1.0)
                for j in range(n):
                    if deltas[j] is not None and _overlaps(regions[i], regions[j]):
                        scale[j] *= c
        if not over:
            break
    else:
        # still over after the rounds: leave the crowded faces' changes out rather than break a budget
        # (an unchanged face is never published: the caller refuses it)
        composed = out
        for i in range(n):
            if crowded[i]:
                x0, y0, x1, y1 = regions[i]
                measured[i] = Rounded(image[y0:y1, x0:x1], ScaleDSSIM({x1 - x0: 0.0}), 100.0, 0.0)
    return composed, [measured.get(i) for i in range(n)]


@torch.no_grad()
def shrink_into_budget(fields: list[torch.Tensor], dssims: list[float], budgets: list[float]) -> list[float | None]:
    """Projected gradient steps: scale each field whose DSSIM is over (or at) its budget back inside it.

    Returns, for each field, c² where c is the scale applied in place (None if untouched):
    DSSIM is about quadratic in δ, so c = √(0.95 ρ / d) lands just inside the budget, and c²·d
    estimates the new DSSIM without measuring it.
    """
    out: list[float | None] = []
    for u, d, rho in zip(fields, dssims, budgets):
        if d > rho * 0.97:
            c = math.sqrt(rho * 0.95 / d)
            u.mul_(c)
            out.append(c * c)
        else:
            out.append(None)
    return out


def apply_regions(image: np.ndarray, regions: list[tuple[int, int, int, int]], pixels: list[np.ndarray]) -> np.ndarray:
    """A copy of ``image`` with each cloaked region written in (later faces win where regions overlap)."""
    out = image.copy()
    for (x0, y0, x1, y1), px in zip(regions, pixels):
        out[y0:y1, x0:x1] = px
    return out


def write_faces(
    jobs: list[FaceJob],
    faces: list[FaceState],
    deltas: list[torch.Tensor],
    names: list[str | None],
    floor: float,
    dev: torch.device,
    blemish_cap: float = 0.0,
) -> tuple[list[np.ndarray], list[FaceResult]]:
    """Each change at the photo's resolution, rounded inside the budget and floor, and measured as written."""
    out_pixels: list[np.ndarray] = []
    results: list[FaceResult] = []
    for j, (job, f) in enumerate(zip(jobs, faces)):
        mv = max_value(job.image)
        rx0, ry0, rx1, ry1 = f.region
        orig_region = to_unit(job.image[ry0:ry1, rx0:rx1], mv, dev)
        x_region = (orig_region + lift(deltas[j], f.copy, orig_region)).clamp_(0, 1)
        deltas[j] = None  # type: ignore[call-overload]
        rounded = round_within_budget(
            x_region, orig_region, mv, f.budget, floor, job.image[ry0:ry1, rx0:rx1], core_of(job.face.box, f.region), blemish_cap
        )
        del orig_region, x_region
        out_pixels.append(rounded.pixels)
        results.append(
            FaceResult(
                job.face.box,
                f.region,
                rounded.scales.worst,
                names[j],
                best_step=f.best_step,
                steps=f.steps_taken,
                budget=f.budget,
                dssim_scales=rounded.scales.per_scale,
                binding_width=rounded.scales.binding,
                ssimulacra2=rounded.ssimulacra2,
                kept=rounded.kept,
                blemish=rounded.blemish,
                blemish_jnd=rounded.blemish_jnd,
            )
        )
    return out_pixels, results
