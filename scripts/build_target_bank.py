"""Build engine/fawkes_engine/data/target_bank.npz from ../shared/datasets/targets (run after changing extractors).

python scripts/build_target_bank.py [--root ../shared/datasets/targets/faces] [--extractors sface dlib]
python scripts/build_target_bank.py --add faceres mobileface   # add extractors, every stored array kept bit for bit
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fawkes_engine.dataset import LabelledFace, crops_for, load_faces
from fawkes_engine.models import get_extractor
from fawkes_engine.targets import BANK_FILE, TargetBank, normalize


def embed(faces: list[LabelledFace], name: str) -> tuple[np.ndarray, dict[str, str]]:
    """Every face embedded by one extractor (L2-normalized), and where that extractor's weights came from."""
    ext = get_extractor(name)
    emb = normalize(ext.embed_onnx(crops_for(faces, ext.spec.template, ext.spec.input_size)))
    return emb, {"source": ext.spec.source, "sha256": ext.source_sha256()}


def build_bank(root: str | Path, extractors: list[str], min_images: int = 3) -> TargetBank:
    """Embed every face of every identity under ``root`` (one folder per identity)."""
    faces = load_faces(root, min_images=min_images)
    names = sorted({f.identity for f in faces})
    index = {n: i for i, n in enumerate(names)}
    emb, sources = {}, {}
    for name in extractors:
        emb[name], sources[name] = embed(faces, name)
    provenance = {
        "dataset": str(Path(root).name),
        "description": "LFW identities reserved as cloak targets; never evaluation classes",
        "images": [str(Path(f.path).relative_to(root)) for f in faces],
        "extractors": sources,
    }
    return TargetBank(names, np.array([index[f.identity] for f in faces]), emb, provenance)


def add_to_bank(path: Path, root: Path, extractors: list[str]) -> None:
    """Embed the same images for more extractors; the arrays already stored are copied unchanged."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    provenance = json.loads(str(arrays["provenance"]))
    faces = load_faces(root, min_images=3)
    if [str(Path(f.path).relative_to(root)) for f in faces] != provenance["images"]:
        raise SystemExit("the target images found differ from the bank's; rebuild it whole")
    for name in extractors:
        emb, provenance["extractors"][name] = embed(faces, name)
        arrays[f"emb_{name}"] = emb.astype(np.float16)
    arrays["provenance"] = np.array(json.dumps(provenance))
    np.savez_compressed(path, **arrays)


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(root.parent / "shared" / "datasets" / "targets" / "faces"))
    ap.add_argument("--extractors", nargs="+", default=["sface", "dlib"])
    ap.add_argument("--add", nargs="+", help="add these extractors to the existing bank")
    ap.add_argument("--out", default=str(root / "engine" / "fawkes_engine" / "data" / BANK_FILE))
    args = ap.parse_args()
    if args.add:
        add_to_bank(Path(args.out), Path(args.root), args.add)
        print(f"added {', '.join(args.add)} -> {args.out}")
        return
    bank = build_bank(args.root, args.extractors)
    bank.save(args.out)
    print(f"{len(bank.identities)} identities, {len(bank.image_identity)} images -> {args.out}")


if __name__ == "__main__":
    main()
