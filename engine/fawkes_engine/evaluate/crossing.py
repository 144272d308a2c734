"""Did a cloaked face end nearer its target than its own original? Measured as a tracker would see it.

The issue's bar for every mode: after the cloaked photo is written, read back, re-detected
and re-aligned, each face's embedding under every extractor of the cloaking set is closer to
its target identity's centroid than to the face's own clean embedding. This measures that on
the ONNX inference path (what a tracker runs), not on the optimizer's float crops, so JPEG,
re-detection and re-alignment all count. The tests and ``benchmarks/bench_crossing`` share it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from fawkes_engine.align import align_numpy
from fawkes_engine.cloak import FaceResult
from fawkes_engine.faces import Face, FaceDetector
from fawkes_engine.models import get_extractor
from fawkes_engine.photo_io import Photo
from fawkes_engine.pipeline import faces_in
from fawkes_engine.targets import TargetBank


@dataclass(frozen=True)
class Crossing:
    extractor: str
    before: float  # ‖own − target centroid‖ (normalized embeddings)
    after: float  # ‖cloaked − target centroid‖
    moved: float  # ‖cloaked − own‖

    @property
    def margin(self) -> float:
        """> 0: the cloaked face is nearer its target than its own original."""
        return self.moved - self.after


def nearest_face(faces: list[Face], box: tuple[float, float, float, float]) -> Face:
    """The detection whose box centre is nearest ``box``'s (the same face found again after a write)."""
    c = np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])
    return min(faces, key=lambda f: float(np.linalg.norm(np.array([f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2]) - c)))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def crossings(
    original: Photo, written: Photo, faces: list[FaceResult], extractors: Iterable[str], bank: TargetBank, detector: FaceDetector
) -> list[list[Crossing]]:
    """Per cloaked face (with a bank target), per extractor: where its re-detected embedding ended up.

    ``written`` is the cloaked photo as read back from disk; both photos are detected afresh.
    """
    back_faces, _ = faces_in(written, detector)
    orig_faces, _ = faces_in(original, detector)
    if not back_faces or not orig_faces:
        raise ValueError("no face detected in the original or the written photo")
    exts = [get_extractor(name) for name in extractors]
    centres = {e.name: bank.centroids(e.name) for e in exts}  # normalized, one row per bank identity
    back8, orig8 = written.rgb8(), original.rgb8()
    out: list[list[Crossing]] = []
    for f in faces:
        if f.target is None or f.target not in bank.identities:
            raise ValueError(f"face at {f.box} has no target-bank identity to cross toward")
        g, o = nearest_face(back_faces, f.box), nearest_face(orig_faces, f.box)
        t = bank.identities.index(f.target)
        row = []
        for ext in exts:
            s = ext.spec
            a = _unit(ext.embed_onnx(align_numpy(back8, g.landmarks, s.template, s.input_size)[None])[0])
            b = _unit(ext.embed_onnx(align_numpy(orig8, o.landmarks, s.template, s.input_size)[None])[0])
            c = centres[ext.name][t]
            row.append(Crossing(ext.name, float(np.linalg.norm(b - c)), float(np.linalg.norm(a - c)), float(np.linalg.norm(a - b))))
        out.append(row)
    return out
