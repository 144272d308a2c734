"""Build every derived model file twice in fresh caches and pin their SHA-256 in engine/fawkes_engine/data/model_digests.json.

    python scripts/pin_model_digests.py

Why twice: a digest is pinned only if two independent builds agree to the byte (the cache then
refuses any other file of that name, whatever the record beside it says).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "engine" / "fawkes_engine" / "data" / "model_digests.json"
BUILD = """
from fawkes_engine.runtime import prepare
prepare()
from fawkes_engine.cloak.options import BUILTIN_EXTRACTORS, OPT_IN_EXTRACTORS
from fawkes_engine.models import get_extractor
for name in BUILTIN_EXTRACTORS:
    if name in OPT_IN_EXTRACTORS:
        continue
    try:
        get_extractor(name).onnx_path()
    except Exception as e:
        print(f"{name}: not built ({e})")
"""


def build_once() -> dict[str, str]:
    from fawkes_engine.models.cache import sha256_file

    with tempfile.TemporaryDirectory() as tmp:
        # no pins while building: the digests are what is being measured
        env = {**os.environ, "FAWKES_CACHE_DIR": tmp, "FAWKES_NO_MODEL_PINS": "1"}
        subprocess.run([sys.executable, "-c", BUILD], env=env, check=True)
        return {p.name: sha256_file(p) for p in sorted((Path(tmp) / "models").glob("*.onnx"))}


def main() -> None:
    first, second = build_once(), build_once()
    agreed = {k: v for k, v in first.items() if second.get(k) == v}
    for k in sorted(set(first) - set(agreed)):
        print(f"{k}: two builds differ; not pinned")
    OUT.write_text(json.dumps(agreed, indent=1, sort_keys=True) + "\n")
    print(f"pinned {len(agreed)} file(s) in {OUT}")


if __name__ == "__main__":
    main()
