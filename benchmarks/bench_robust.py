"""Clean accuracy and size of the shipped extractors, robust copies included.

    python -m benchmarks.bench_robust

Leave-one-out 1-NN identification on lfw-dev (85 identities × 10 photos; re-detected and
aligned as the trackers of `fawkes eval` do) through each extractor's ONNX file, which for
the robust ones is the shipped int8 file. The robust issue's bar: ≥ 90 %.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import SHARED, report
from fawkes_engine.dataset import crops_for, load_faces
from fawkes_engine.evaluate.trackers import loo_1nn_accuracy
from fawkes_engine.models import get_extractor

NAMES = ("sface", "dlib", "sface-robust", "dlib-robust")


def main() -> None:
    faces = load_faces(SHARED / "lfw-dev" / "faces")
    labels = np.array([f.identity for f in faces])
    rows: list[dict[str, object]] = []
    for name in NAMES:
        ext = get_extractor(name)
        s = ext.spec
        emb = ext.embed_onnx(crops_for(faces, s.template, s.input_size))
        size_mb = ext.source_path().stat().st_size / 1e6
        rows.append(
            {
                "extractor": name,
                "lfw-dev LOO 1-NN": loo_1nn_accuracy(emb, labels, s.metric),
                "faces": len(faces),
                "shipped file MB": round(size_mb, 1),
            }
        )
    report("robust", rows)


if __name__ == "__main__":
    main()
