"""Where a change buys the most: feature shift per unit of perceptual cost, per channel and per face region.

    python -m benchmarks.bench_where [--faces 24] [--norm 1.0] [--name where]

For each lfw-dev face (one photo of each of ``--faces`` identities, seed 0) and each
(channel, region) cell — channels luma, Cb, Cr; regions eyes, brows, nose, mouth, cheeks,
the face's outline and the hair/forehead band (from the five landmarks) — the change is the
gradient of SFace's distance from the clean face, restricted to that cell and scaled to an
RMS of ``--norm`` levels over the face box (one signed-gradient step, the same size in every
cell, so cells compare at equal energy). Measured on the changed face:

- the shift it buys: SFace's distance from clean (white-box), and **dlib's** (held out: the
  step never saw dlib, so this is what transfers);
- what it costs: SSIMULACRA2 (the package, independent of the torch copy), DSSIM at the face
  box's scale (the engine's), and the largest 3×3 mean |Δluma| (levels).

Rows: per cell, medians over faces, and the two ratios that decide where the change should
go: held-out shift per SSIMULACRA2 point and per DSSIM unit.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import SHARED, report

LFW = SHARED / "lfw-dev" / "faces"
REGIONS = ("eyes", "brows", "nose", "mouth", "cheeks", "outline", "hair")
CHANNELS = ("Y", "Cb", "Cr")


def region_masks(h: int, w: int, lm: np.ndarray) -> dict[str, torch.Tensor]:
    """Soft-edged masks of the face box (h×w) from its five landmarks (eyes, nose, mouth corners)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    le, re, nose, lm_, rm = (torch.tensor(p, dtype=torch.float32) for p in lm)
    d = float(torch.linalg.norm(re - le))

    def disc(c: torch.Tensor, r: float) -> torch.Tensor:
        return (((xs - c[0]) ** 2 + (ys - c[1]) ** 2) < r * r).float()

    mouth_c = (lm_ + rm) / 2
    up = torch.tensor([0.0, -0.28 * d])
    masks = {
        "eyes": torch.maximum(disc(le, 0.25 * d), disc(re, 0.25 * d)),
        "brows": torch.maximum(disc(le + up, 0.22 * d), disc(re + up, 0.22 * d)),
        "nose": disc(nose, 0.28 * d),
        "mouth": torch.maximum(disc(mouth_c, 0.32 * d), torch.maximum(disc(lm_, 0.15 * d), disc(rm, 0.15 * d))),
        "cheeks": torch.maximum(
            disc((le + lm_) / 2 - torch.tensor([0.15 * d, 0.0]), 0.22 * d), disc((re + rm) / 2 + torch.tensor([0.15 * d, 0.0]), 0.22 * d)
        ),
    }
    inner = torch.zeros(h, w)
    for m in masks.values():
        inner = torch.maximum(inner, m)
    band = int(max(2, 0.12 * min(h, w)))
    edge = torch.ones(h, w)
    edge[band:-band, band:-band] = 0
    masks["outline"] = edge * (1 - inner)
    top = (ys < (le[1] + re[1]) / 2 - 0.5 * d).float()
    masks["hair"] = top * (1 - edge) * (1 - inner)
    for k in ("eyes", "brows", "nose", "mouth", "cheeks"):  # the cells do not overlap: a pixel belongs to its first region
        for j in REGIONS[: REGIONS.index(k)]:
            if j in masks:
                masks[k] = masks[k] * (1 - masks[j])
    return {k: masks[k] for k in REGIONS}


def main() -> None:
    from fawkes_engine.align import similarity_transform, warp_faces, with_origin
    from fawkes_engine.dataset import load_faces
    from fawkes_engine.models import get_extractor
    from fawkes_engine.visibility.blemish import largest_patch_change
    from fawkes_engine.visibility.masking import rgb_to_ycc, ycc_to_rgb
    from fawkes_engine.visibility.scales import ssimulacra2
    from fawkes_engine.visibility.ssim import dssim

    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=int, default=24)
    ap.add_argument("--norm", type=float, default=1.0, help="RMS of the change over the face box, in levels")
    ap.add_argument("--name", default="where")
    args = ap.parse_args()
    torch.manual_seed(0)
    ids = sorted(p for p in LFW.iterdir() if p.is_dir())
    pick = sorted(np.random.default_rng(0).choice(len(ids), size=args.faces, replace=False).tolist())
    faces = [f for f in load_faces(LFW, per_identity=1) if any(f.path.parent == ids[i] for i in pick)]
    exts = {n: get_extractor(n) for n in ("sface", "dlib")}
    mods = {n: e.torch_module("cpu") for n, e in exts.items()}
    cells: dict[tuple[str, str], list[dict[str, float]]] = {}
    for lf in faces:
        rgb = lf.rgb
        x0, y0, x1, y1 = lf.face.region(rgb.shape, 0.1)
        img = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()[None] / 255
        box = img[..., y0:y1, x0:x1]
        h, w = box.shape[-2:]
        lm_box = lf.face.landmarks - np.array([x0, y0])

        def embed(name: str, b: torch.Tensor) -> torch.Tensor:
            full = img.clone()
            full[..., y0:y1, x0:x1] = b
            spec = exts[name].spec
            m = similarity_transform(lf.face.landmarks, spec.template)
            return F.normalize(mods[name](warp_faces(full, with_origin(m, 0, 0)[None], spec.input_size)), dim=1)

        clean = {n: embed(n, box).detach() for n in mods}
        u = torch.zeros(1, 3, h, w, requires_grad=True)
        ((embed("sface", box + ycc_to_rgb(u)) - clean["sface"]).norm() + 0 * u.sum()).backward()
        # the distance's gradient is zero at u = 0 (a minimum of a norm): take it at a small random start instead
        if u.grad is None or float(u.grad.abs().sum()) == 0:
            u0 = (torch.randn(1, 3, h, w) * 0.5 / 255).requires_grad_()
            (embed("sface", box + ycc_to_rgb(u0)) - clean["sface"]).norm().backward()
            grad = u0.grad
        else:
            grad = u.grad
        assert grad is not None
        masks = region_masks(h, w, lm_box)
        a8 = (box[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        for c_i, ch in enumerate(CHANNELS):
            for reg in REGIONS:
                g = torch.zeros_like(grad)
                g[:, c_i] = grad[:, c_i] * masks[reg]
                if float(g.abs().sum()) == 0:
                    continue
                # the same energy in every cell: RMS over the whole box of args.norm levels
                step = g / g.pow(2).mean().sqrt() * (args.norm / 255)
                moved = (box + ycc_to_rgb(step)).clamp(0, 1)
                moved = (moved * 255).round() / 255
                b8 = (moved[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                cells.setdefault((ch, reg), []).append(
                    {
                        "sface": float((embed("sface", moved) - clean["sface"]).norm()),
                        "dlib": float((embed("dlib", moved) - clean["dlib"]).norm()),
                        "s2_cost": 100.0 - ssimulacra2(a8, b8),
                        "dssim": float(dssim(moved, box)),
                        "blemish": float(largest_patch_change(box, moved)[0]),
                        "luma_share": float(rgb_to_ycc(moved - box)[:, 0].abs().mean()),
                    }
                )
    rows = []
    for (ch, reg), vals in sorted(cells.items(), key=lambda kv: (CHANNELS.index(kv[0][0]), REGIONS.index(kv[0][1]))):
        med = {k: float(np.median([v[k] for v in vals])) for k in vals[0]}
        rows.append(
            {
                "channel": ch,
                "region": reg,
                "faces": len(vals),
                "sface shift": med["sface"],
                "dlib shift (held out)": med["dlib"],
                "S2 cost": med["s2_cost"],
                "DSSIM": med["dssim"],
                "3x3 max": med["blemish"],
                "dlib per S2 pt": float(np.median([v["dlib"] / max(v["s2_cost"], 1e-3) for v in vals])),
                "dlib per 0.001 DSSIM": float(np.median([v["dlib"] / max(v["dssim"] * 1000, 1e-6) for v in vals])),
            }
        )
    report(args.name, rows, {"faces": len(faces), "norm_levels_rms": args.norm})


if __name__ == "__main__":
    main()
