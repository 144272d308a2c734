"""How a tracker sees photos: re-detect, re-align and embed them, each view by name from a registry.

A view is one of our extractors behind our detector and alignment (:class:`FeatureView`,
any registered extractor name), or a recognizer's own pipeline end to end, registered under
its own name: ``dlib-native`` is dlib's HOG detector, 5-point chips and ResNet from
dlib-bin, whose alignment is not ours. Each view has a model ``family``: leave-one-model-out
measurement never lets a cloak use a member of the tracker's family.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from fawkes_engine.align import align_numpy
from fawkes_engine.faces import Face, FaceDetector, central_face
from fawkes_engine.models import get_extractor


class View(Protocol):
    name: str
    family: str
    metric: str
    threshold: float

    def embed(self, images: list[np.ndarray]) -> np.ndarray: ...


class FeatureView:
    """How one tracker extractor sees photos: re-detect, re-align, embed (ONNX)."""

    name: str
    family: str
    metric: str
    threshold: float

    def __init__(self, name: str, detector: FaceDetector) -> None:
        self.name = name
        self.detector = detector
        ext = get_extractor(name)
        self.ext = ext
        self.metric, self.threshold = ext.spec.metric, ext.spec.match_threshold
        self.family = ext.spec.model_family

    def crops(self, images: list[np.ndarray]) -> np.ndarray:
        s = self.ext.spec
        out = []
        for rgb in images:
            face = central_face(rgb, self.detector)
            if face is None:  # the tracker finds no face: it looks at the middle of the photo
                h, w = rgb.shape[:2]
                side = min(h, w)
                lm = s.template * (side / s.input_size) + np.array([(w - side) / 2, (h - side) / 2])
                face = Face((0, 0, w, h), lm)
            out.append(align_numpy(rgb, face.landmarks, s.template, s.input_size))
        return np.stack(out)

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        return self.ext.embed_onnx(self.crops(images))


class NativeDlibView:
    name: str
    """dlib's own pipeline end to end (HOG detector, 5-point landmarks, face chips, ResNet) from dlib-bin."""

    family = "dlib"
    metric, threshold = "euclidean", 0.6  # dlib's documented same-person distance
    ext = None  # not one of our extractors: no end-to-end tracker on it

    def __init__(self, name: str = "dlib-native", detector: FaceDetector | None = None) -> None:
        from importlib import resources

        import dlib

        self.name = name

        models = Path(str(resources.files("face_recognition_models") / "models"))
        self.dlib = dlib
        self.hog = dlib.get_frontal_face_detector()
        self.sp = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        self.rec = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        out = []
        for rgb in images:
            rgb = np.ascontiguousarray(rgb)
            dets = self.hog(rgb, 1)
            h, w = rgb.shape[:2]
            if dets:
                c = np.array([w / 2, h / 2])
                rect = min(dets, key=lambda r: np.linalg.norm(np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2]) - c))
            else:
                rect = self.dlib.rectangle(0, 0, w - 1, h - 1)
            shape = self.sp(rgb, rect)
            out.append(np.array(self.rec.compute_face_descriptor(rgb, shape)))
        return np.stack(out).astype(np.float32)


_VIEWS: dict[str, Callable[[str, FaceDetector], View]] = {"dlib-native": NativeDlibView}


def make_view(name: str, detector: FaceDetector) -> View:
    factory: Callable[[str, FaceDetector], View] = _VIEWS.get(name, FeatureView)
    return factory(name, detector)


def view_family(name: str) -> str:
    """The model family of a view, without building it where it is a registered pipeline."""
    factory = _VIEWS.get(name)
    if factory is not None:
        return str(getattr(factory, "family", name))
    from fawkes_engine.models import family

    return family(name)
