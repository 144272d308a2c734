"""Derive dlib's 150×150 face-chip template in YuNet's 5-point convention.

dlib aligns with its own landmark model (eye corners and nose base) and a 0.25 padding;
our pipeline aligns every extractor from YuNet's 5 points. This script makes dlib chips
the way dlib does (HOG detector + 5-point shape predictor + ``get_face_chip``) for photos
from ``robust-train`` (people in no evaluation set), finds YuNet's landmarks on each chip,
and prints their median: the template under which our chips match dlib's.

    python scripts/derive_dlib_template.py ../shared/datasets/robust-train/faces 400
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import cv2
import dlib
import numpy as np

from fawkes_engine.faces import FaceDetector


def main(folder: str, limit: int) -> None:
    models = Path(str(resources.files("face_recognition_models") / "models"))
    hog = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    det = FaceDetector(min_face=10)
    pts = []
    files = sorted(Path(folder).rglob("*.jpg"))[:limit]
    pad = 75
    for f in files:
        rgb = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        dets = hog(rgb, 1)
        if len(dets) != 1:
            continue
        chip = dlib.get_face_chip(rgb, sp(rgb, dets[0]), size=150, padding=0.25)
        big = cv2.copyMakeBorder(chip, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        found = det.detect(big).faces
        if len(found) != 1:
            continue
        pts.append(found[0].landmarks - pad)
    arr = np.stack(pts)
    print(f"{len(arr)} chips from {len(files)} photos")
    print("median:", np.array2string(np.median(arr, 0), precision=4, separator=", "))
    print("std:", np.array2string(arr.std(0), precision=2, separator=", "))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 400)
