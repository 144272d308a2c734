"""Build engine/data/target_bank.npz from ../shared/datasets/targets (run after changing extractors).

python scripts/build_target_bank.py [--root ../shared/datasets/targets/faces] [--extractors sface dlib]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fawkes_engine.targets import BANK_FILE, build_bank


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(root.parent / "shared" / "datasets" / "targets" / "faces"))
    ap.add_argument("--extractors", nargs="+", default=["sface", "dlib"])
    ap.add_argument("--out", default=str(root / "engine" / "data" / BANK_FILE))
    args = ap.parse_args()
    bank = build_bank(args.root, args.extractors)
    bank.save(args.out)
    print(f"{len(bank.identities)} identities, {len(bank.image_identity)} images -> {args.out}")


if __name__ == "__main__":
    main()
