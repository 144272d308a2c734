"""Adversarially fine-tune a built-in extractor without identity labels (paper §5.3), then ship it.

Objective (robust distillation): the frozen original model T gives each clean face its
embedding t = T(x). The student S starts as a copy of T and minimizes

    ‖S(x) − t‖² + β · ‖S(x + δ) − t‖²,   δ = PGD_{‖δ‖∞ ≤ ε}( maximize ‖S(x + δ) − t‖² )

on normalized embeddings: clean faces stay where the original put them (so identities
stay apart and clean accuracy holds), and small perturbations stop moving them. Why
distillation and not "stay close to your own clean embedding": that version lets the
student shrink the whole space (different people 0.47 apart instead of 0.82 in an
earlier try), which makes cloaks against it fail; anchoring on T keeps the geometry.

Checkpoints every epoch (``--out/checkpoint.pt``) and resumes from one. Per epoch it logs,
on an evaluation pack: clean 1-NN leave-one-out accuracy, the spread of identity
centroids relative to T, and how often a small targeted L∞ attack on the student moves a
face nearer a far identity than its own (``cloakable``; a robust model that cannot be
cloaked is useless to us). At the end it exports ONNX with int8 weights and provenance.

    python scripts/train_robust.py --extractor dlib --pack .devpack/robust-train.npz \
        --eval-pack .devpack/lfw-dev.npz --eps 2 --epochs 8 --out runs/dlib-robust
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load_base(name: str, path: Path | None) -> nn.Module:
    """The original extractor as a torch module (RGB [0, 1] in, raw embedding out)."""
    if path is None:
        from fawkes_engine.models import get_extractor

        return get_extractor(name).build_torch()
    if path.suffix == ".pt":  # a pickled module (e.g. an fp16 copy carried to a GPU machine)
        return torch.load(path, weights_only=False).float()
    import onnx

    from fawkes_engine.models.base import PixelAdapter
    from fawkes_engine.models.onnx_dequant import dequantize_model
    from fawkes_engine.models.onnx_torch import onnx_to_torch
    from fawkes_engine.models.sface import build_fp32

    tmp = Path(tempfile.mkdtemp()) / "base.fp32.onnx"  # per process: variants may start side by side
    if name == "sface":  # the package's own file: [0, 255] input, block-quantized
        build_fp32(path, tmp)
        return PixelAdapter(onnx_to_torch(tmp), "RGB").eval()
    # an exported extractor (RGB [0, 1] in), possibly with int8 weights
    onnx.save(dequantize_model(onnx.load(str(path))), str(tmp))
    return onnx_to_torch(tmp).eval()


def decode_pack(path: Path, name: str) -> tuple[torch.Tensor, np.ndarray]:
    """Chips (N×3×S×S uint8) and identities from a ``scripts/pack_faces.py`` pack."""
    import cv2

    z = np.load(path, allow_pickle=True)
    chips = np.stack([cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1] for b in z[f"jpeg_{name}"]])
    return torch.from_numpy(np.ascontiguousarray(chips.transpose(0, 3, 1, 2))), z["identity"]


def embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return F.normalize(model(x), dim=1)


def pgd(
    model: nn.Module, x: torch.Tensor, anchor: torch.Tensor, eps: float, steps: int, target: torch.Tensor | None = None
) -> torch.Tensor:
    """L∞ PGD from a random start: push S(x + δ) away from ``anchor`` (or, with ``target``, toward it)."""
    alpha = 2.5 * eps / max(steps, 1)
    delta = (torch.rand_like(x) * 2 - 1) * eps
    for _ in range(steps):
        delta.requires_grad_(True)
        e = embed(model, (x + delta).clamp(0, 1))
        obj = (e - anchor).pow(2).sum(1).sum() if target is None else -(e - target).pow(2).sum(1).sum()
        (g,) = torch.autograd.grad(obj, delta)
        delta = (delta.detach() + alpha * g.sign()).clamp(-eps, eps)
    return (x + delta).clamp(0, 1).detach()


@torch.no_grad()
def embed_all(model: nn.Module, chips: torch.Tensor, device: torch.device, batch: int = 256) -> torch.Tensor:
    return torch.cat([embed(model, chips[i : i + batch].to(device).float() / 255) for i in range(0, len(chips), batch)])


def evaluate(
    student: nn.Module, chips: torch.Tensor, ids: np.ndarray, device: torch.device, ref_spread: float | None, eps: float, steps: int
) -> dict[str, float]:
    """Clean LOO 1-NN accuracy, centroid spread, and the fraction of faces a small targeted attack can cloak."""
    e = embed_all(student, chips, device)
    labels = torch.as_tensor(np.unique(ids, return_inverse=True)[1], device=device)
    d = torch.cdist(e, e)
    d.fill_diagonal_(math.inf)
    acc = float((labels[d.argmin(1)] == labels).float().mean())
    n_cls = int(labels.max()) + 1
    cent = F.normalize(torch.stack([e[labels == c].mean(0) for c in range(n_cls)]), dim=1)
    cd = torch.cdist(cent, cent)
    spread = float(cd[torch.triu(torch.ones_like(cd, dtype=torch.bool), 1)].median())
    # cloakability: attack toward the farthest identity centroid (the paper's target choice)
    far = cd[labels].argmax(1)
    ok = []
    for i in range(0, len(chips), 128):
        x = chips[i : i + 128].to(device).float() / 255
        with torch.enable_grad():
            adv = pgd(student, x, e[i : i + 128], eps, steps, target=cent[far[i : i + 128]])
        ea = embed(student, adv)
        dt = (ea - cent[far[i : i + 128]]).norm(dim=1)
        do = (ea - cent[labels[i : i + 128]]).norm(dim=1)
        ok.append((dt < do).float())
    out = {"clean_1nn": acc, "spread": spread, "cloakable": float(torch.cat(ok).mean())}
    if ref_spread:
        out["spread_ratio"] = spread / ref_spread
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export(student: nn.Module, name: str, size: int, out: Path, provenance: dict) -> Path:
    import onnx

    from fawkes_engine.models.base import export_onnx
    from fawkes_engine.models.quantize import quantize_weights

    fp32 = out / f"{name}.fp32.onnx"
    export_onnx(copy.deepcopy(student).cpu().float().eval(), size, fp32)
    model = quantize_weights(onnx.load(str(fp32)))
    model.metadata_props.add(key="fawkes_provenance", value=json.dumps(provenance, sort_keys=True))
    dst = out / f"{name}.onnx"
    onnx.save(model, str(dst))
    fp32.unlink()
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extractor", required=True, choices=["dlib", "sface"])
    ap.add_argument("--base", type=Path, default=None, help="original weights file (default: the installed package's)")
    ap.add_argument("--pack", type=Path, required=True)
    ap.add_argument("--eval-pack", type=Path, default=None)
    ap.add_argument("--eps", type=float, default=2.0, help="PGD budget in 1/255 units")
    ap.add_argument("--pgd-steps", type=int, default=3)
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=None, help="stop after the epoch that passes this")
    ap.add_argument("--limit", type=int, default=None, help="train on the first N faces only (smoke tests)")
    ap.add_argument("--cloak-eps", type=float, default=4.0, help="targeted-attack budget for the cloakable metric (1/255)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device))
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"{args.extractor}-robust"
    chips, _ = decode_pack(args.pack, args.extractor)
    if args.limit:
        chips = chips[: args.limit]
    chips = chips.to(dev)
    size = chips.shape[-1]
    teacher = load_base(args.extractor, args.base).to(dev).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    # deepcopy, not a rebuild from shared numpy arrays: a "frozen" teacher must never alias the student
    student = copy.deepcopy(teacher)
    params = [p for p in student.parameters() if p.is_floating_point()]
    for p in params:
        p.requires_grad_(True)
    steps_per_epoch = math.ceil(len(chips) / args.batch)
    opt = torch.optim.Adam(params, lr=args.lr)
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, total) / total)))
    ckpt = args.out / "checkpoint.pt"
    log: list[dict] = []
    start_epoch = 0
    if ckpt.exists():
        state = torch.load(ckpt, map_location=dev, weights_only=False)
        student.load_state_dict(state["student"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        start_epoch, log = state["epoch"], state["log"]
        print(f"resumed at epoch {start_epoch}")
    eval_data = decode_pack(args.eval_pack, args.extractor) if args.eval_pack else None
    ref: dict[str, float] | None = None
    if eval_data is not None:
        ref = evaluate(teacher, *eval_data, dev, None, args.cloak_eps / 255, 20)
        print(f"original: {ref}")
    eps = args.eps / 255
    t0 = time.time()
    for epoch in range(start_epoch, args.epochs):
        student.eval()  # no batch norms left to update (dlib's are folded affines, SFace's folded into convs)
        perm = torch.randperm(len(chips), generator=gen).to(dev)
        run = {"clean": 0.0, "adv": 0.0, "n": 0}
        for b in range(steps_per_epoch):
            idx = perm[b * args.batch : (b + 1) * args.batch]
            x = chips[idx].float() / 255
            flip = torch.rand(len(x), device=dev) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            with torch.no_grad():
                t = embed(teacher, x)
            adv = pgd(student, x, t, eps, args.pgd_steps)
            lc = (embed(student, x) - t).pow(2).sum(1).mean()
            la = (embed(student, adv) - t).pow(2).sum(1).mean()
            loss = lc + args.beta * la
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            run["clean"] += float(lc.detach()) * len(x)
            run["adv"] += float(la.detach()) * len(x)
            run["n"] += len(x)
        entry = {"epoch": epoch + 1, "clean_loss": run["clean"] / run["n"], "adv_loss": run["adv"] / run["n"], "seconds": time.time() - t0}
        if eval_data is not None:
            entry.update(evaluate(student, *eval_data, dev, ref["spread"] if ref else None, args.cloak_eps / 255, 20))
        log.append(entry)
        print(json.dumps(entry), flush=True)
        torch.save(
            {
                "student": student.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "gen": gen.get_state(),
                "epoch": epoch + 1,
                "log": log,
            },
            ckpt,
        )
        if args.minutes and time.time() - t0 > args.minutes * 60:
            print(f"time budget reached after epoch {epoch + 1}")
            break
    provenance = {
        "name": name,
        "base": args.extractor,
        "training_data": "../shared/datasets/robust-train (7,218 LFW deep-funneled photos, 5,312 people in no evaluation set), "
        f"pack sha256 {sha256(args.pack)[:16]}, {len(chips)} faces",
        "recipe": f"robust distillation: ‖S(x)−T(x)‖² + {args.beta}·‖S(x+δ)−T(x)‖², δ = L∞ PGD {args.pgd_steps} steps ε={args.eps}/255, "
        f"Adam lr {args.lr} cosine, batch {args.batch}, {log[-1]['epoch'] if log else 0} epochs, horizontal flips; int8 per-channel weights",
        "command": "python scripts/train_robust.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "seed": args.seed,
        "original": ref,
        "final": log[-1] if log else None,
        "device": str(dev),
    }
    dst = export(student, name, size, args.out, provenance)
    (args.out / "log.json").write_text(json.dumps({"provenance": provenance, "log": log}, indent=2))
    print(f"wrote {dst} ({dst.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
