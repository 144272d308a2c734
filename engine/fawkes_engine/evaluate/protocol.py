"""`fawkes eval`'s protocol: protect a user, train a tracker, test it on the user's clean photos.

For a protected user U (paper §5.1): U's photos are split into a training part, which is
cloaked, and a test part, which stays clean. The tracker trains on U's cloaked photos plus
the other identities' clean training photos, and is tested on U's clean test photos
(protection = share not identified as U) and on the others' test photos (normal
accuracy). The same run without cloaking gives the baseline. Trackers re-detect and
re-align every photo themselves, as a real tracker would; the tracker's extractor is
chosen independently of the cloaking set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fawkes_engine.align import is_aligned_crop
from fawkes_engine.cloak import CloakOptions
from fawkes_engine.cloak.variant import variant_label
from fawkes_engine.dataset import LabelledFace, load_faces
from fawkes_engine.evaluate.trackers import TRACKERS, UNKNOWN, TrackerTask, accuracy, protection_rate
from fawkes_engine.evaluate.views import View, make_view
from fawkes_engine.faces import FaceDetector, central_face
from fawkes_engine.photo_io import EXTENSIONS, Photo, read_photo
from fawkes_engine.pipeline import PhotoCloaker
from fawkes_engine.targets import TargetBank

log = logging.getLogger(__name__)
Sample = LabelledFace  # one labelled face of the evaluation set


@dataclass
class EvalConfig:
    dataset: Path
    users: list[str] | None = None  # None: every identity with ≥ min_images, up to max_users
    max_users: int = 8
    min_images: int = 8
    train_fraction: float = 0.6
    cloak: CloakOptions = field(default_factory=CloakOptions)
    modes: list[str] = field(default_factory=lambda: ["mid"])
    tracker_extractors: list[str] = field(default_factory=lambda: ["sface", "dlib"])
    trackers: list[str] = field(default_factory=lambda: ["linear", "similarity"])
    label_density: list[int] = field(default_factory=list)
    leaked: list[float] = field(default_factory=list)
    jpeg: list[int] = field(default_factory=list)
    blur: list[float] = field(default_factory=list)
    noise: list[float] = field(default_factory=list)  # std in 0-255 units
    end_to_end_epochs: int = 2
    # paper §7: Sybil photos per user photo (0 = none), crossed with every `leaked` fraction
    sybil: list[int] = field(default_factory=list)
    sybil_candidates: Path | None = None  # candidate faces (never an evaluation identity)
    sybil_pool: int = 120  # candidate photos drawn from sybil_candidates
    sybil_goal: str = "photo"  # photo | centroid (fawkes_engine.sybil.make_sybils)
    # paper §8: detection statistics, with and without each mitigation
    detection: bool = False
    stop_fraction: float = 0.5  # mitigation (a)
    detection_leaked: float = 0.5  # clean share mixed into the class for two-cluster detection
    # leave-one-model-out transfer: cloak variants ("EXTRACTORS[:option=value...]", see parse_variant),
    # each measured only against trackers of a family that is not in its cloaking set
    transfer: list[str] = field(default_factory=list)
    transfer_jpeg: int = 85
    mode_rows: bool = True  # False: skip the default cloak's per-mode rows (a transfer-only run)
    seed: int = 0


@dataclass
class Split:
    train: list[int]
    test: list[int]


def split_identities(samples: list[Sample], fraction: float, seed: int) -> dict[str, Split]:
    by_id: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_id.setdefault(s.identity, []).append(i)
    rng = np.random.default_rng(seed)
    out = {}
    for ident, idx in by_id.items():
        idx = list(rng.permutation(idx))
        n = max(1, int(round(len(idx) * fraction))) if len(idx) > 1 else 1
        out[ident] = Split([int(i) for i in idx[:n]], [int(i) for i in idx[n:]])
    return out


class Evaluation:
    """Holds the data, the cloaked photos (cached per mode) and the feature views for one run."""

    def __init__(self, cfg: EvalConfig, progress: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.say = progress or (lambda m: log.info("%s", m))
        self.detector = FaceDetector()
        t = time.perf_counter()
        self.samples = load_faces(cfg.dataset, detector=self.detector, order="name")
        self.say(f"loaded {len(self.samples)} faces from {cfg.dataset} in {time.perf_counter() - t:.0f} s")
        self.splits = split_identities(self.samples, cfg.train_fraction, cfg.seed)
        counts = {k: len(v.train) + len(v.test) for k, v in self.splits.items()}
        eligible = sorted(k for k, n in counts.items() if n >= cfg.min_images)
        if cfg.users:
            missing = [u for u in cfg.users if u not in counts]
            if missing:
                raise ValueError(f"users not in the dataset: {', '.join(missing)}")
            self.users = list(cfg.users)
        else:
            rng = np.random.default_rng(cfg.seed)
            self.users = sorted(rng.choice(eligible, size=min(cfg.max_users, len(eligible)), replace=False).tolist())
        bank = TargetBank.load()
        self.target_overlap = sorted(set(bank.identities) & set(self.splits))
        self.views: dict[str, View] = {n: make_view(n, self.detector) for n in cfg.tracker_extractors}
        self._clean: dict[str, np.ndarray] = {}
        self._cloaked: dict[tuple, dict[int, np.ndarray]] = {}
        self.cloak_seconds: dict[str, list[float]] = {}
        self.dssim: dict[str, list[float]] = {}
        self.ssimulacra2: dict[str, list[float]] = {}
        self.weak: dict[str, list[float]] = {}  # per face: 1 if the cloak did not carry it across (FaceResult.weak)
        self._baseline: dict[tuple, tuple[float, float]] = {}
        self._transformed: dict[tuple, np.ndarray] = {}
        self._sybil: dict[tuple, list[list[np.ndarray]]] = {}
        self._pool: list[Sample] | None = None
        self.sybil_stats: list[dict] = []

    # -- Sybil identities (paper §7) --------------------------------------------------------------
    def sybil_pool(self) -> list[Sample]:
        """Candidate faces: one photo per identity folder of ``sybil_candidates``, seeded draw."""
        if self._pool is None:
            root = self.cfg.sybil_candidates
            if root is None:
                raise ValueError("Sybil scenarios need sybil_candidates (a folder of other people's faces)")
            dirs = sorted(p for p in Path(root).iterdir() if p.is_dir())
            clash = sorted({d.name for d in dirs} & set(self.splits))
            if clash:
                raise ValueError(f"Sybil candidates include evaluation identities: {', '.join(clash[:5])}")
            rng = np.random.default_rng(self.cfg.seed)
            pool = []
            for k in rng.permutation(len(dirs))[: self.cfg.sybil_pool]:
                d = dirs[k]
                files = sorted(p for p in Path(d).iterdir() if p.suffix.lower() in EXTENSIONS)
                if not files:
                    continue
                f = files[int(rng.integers(len(files)))]
                rgb = read_photo(f).rgb8()
                face = central_face(rgb, self.detector)
                if face is not None:
                    pool.append(Sample(f, Path(d).name, rgb, face.landmarks, is_aligned_crop(rgb.shape), face))
            self._pool = pool
            self.say(f"Sybil candidate pool: {len(pool)} faces from {root}")
        return self._pool

    def sybil_images(self, user: str, options: CloakOptions, per_photo: int) -> list[np.ndarray]:
        """Cloaked candidate photos standing in for each of U's training photos (the first ``per_photo`` of each)."""
        from fawkes_engine.sybil import make_sybils

        most = max(self.cfg.sybil)
        key = (user, repr(options))
        if key not in self._sybil:
            idx = self.splits[user].train
            pool = self.sybil_pool()
            pc = PhotoCloaker(options, detector=self.detector)
            t = time.perf_counter()
            made = make_sybils(
                [Photo(self.samples[i].rgb, "PNG") for i in idx],
                [Photo(s.rgb, "PNG") for s in pool],
                most,
                cloaker=pc.cloaker,
                detector=self.detector,
                user_faces=[self.samples[i].face for i in idx],
                candidate_faces=[s.face for s in pool],
                goal=self.cfg.sybil_goal,
            )
            per_user: list[list[np.ndarray]] = [[] for _ in idx]
            for m in made:
                per_user[m.user_index].append(m.photo.rgb)
                self.sybil_stats.append(
                    {
                        "user": user,
                        "dssim": m.face.dssim,
                        "to_user_before": m.to_user_before,
                        "to_user_after": m.to_user_after,
                        "own_shift": m.own_shift,
                    }
                )
            self.say(f"Sybil photos for {user}: {len(made)} in {time.perf_counter() - t:.0f} s")
            self._sybil[key] = per_user
        return [img for imgs in self._sybil[key] for img in imgs[:per_photo]]

    def user_train_features(self, user: str, view: str, options: CloakOptions | None, leaked: float = 0.0) -> np.ndarray:
        """The features a tracker gets for U's training photos: cloaked, except the leaked share."""
        idx = self.splits[user].train
        clean = self.clean_features(view)[idx]
        if options is None:
            return clean
        cloaked = self.cloaked_images(user, options)
        n_leak = int(round(leaked * len(idx)))
        out = clean.copy()
        rest = list(range(n_leak, len(idx)))
        if rest:
            out[rest] = self.views[view].embed([cloaked[idx[k]] for k in rest])
        return out

    # -- data -------------------------------------------------------------------------------
    def clean_features(self, view: str) -> np.ndarray:
        if view not in self._clean:
            self._clean[view] = self.views[view].embed([s.rgb for s in self.samples])
        return self._clean[view]

    def cloak_key(self, options: CloakOptions) -> str:
        """How timings and DSSIM of one cloak variant are keyed in the results: the mode, plus what differs."""
        b = options.budget
        label = b.mode if b.dssim_budget is None else f"rho={b.dssim_budget}"
        if options != self.cfg.cloak.replace(mode=b.mode):
            label = f"{label} [{variant_label(options, self.cfg.cloak)}]"
        return label

    def cloaked_pairs(self, options: CloakOptions) -> list[tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]]:
        """(original, written cloak, the engine's face box) of every training photo cloaked with ``options`` so far."""
        out = []
        for (_user, opts), cloaked in self._cloaked.items():
            if opts == repr(options):
                out += [(self.samples[i].rgb, px, self.samples[i].face.box) for i, px in cloaked.items()]
        return out

    def cloaked_images(self, user: str, options: CloakOptions) -> dict[int, np.ndarray]:
        key = (user, repr(options))
        if key not in self._cloaked:
            idx = self.splits[user].train
            pc = PhotoCloaker(options, detector=self.detector)
            photos = [Photo(self.samples[i].rgb, "PNG") for i in idx]
            faces = [[self.samples[i].face] for i in idx]
            t = time.perf_counter()
            results = pc.cloak(photos, faces)
            dt = time.perf_counter() - t
            label = self.cloak_key(options)
            self.cloak_seconds.setdefault(label, []).append(dt / max(len(idx), 1))
            self.dssim.setdefault(label, []).extend(f.dssim for r in results for f in r.faces)
            self.ssimulacra2.setdefault(label, []).extend(f.ssimulacra2 for r in results for f in r.faces)
            self.weak.setdefault(label, []).extend(float(f.weak) for r in results for f in r.faces)
            self._cloaked[key] = {i: r.photo.rgb for i, r in zip(idx, results)}
        return self._cloaked[key]

    # -- one measurement --------------------------------------------------------------------
    def measure(
        self,
        user: str,
        view: str,
        tracker: str,
        options: CloakOptions | None,
        classes: list[str] | None = None,
        leaked: float = 0.0,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        transform_key: str = "",
        sybil: int = 0,
    ) -> tuple[float, float]:
        """(protection, normal accuracy) for one user, tracker and condition; options=None is the baseline."""
        if options is None:  # the baseline does not depend on cloak options or leaks: compute it once
            key = (user, view, tracker, tuple(classes or ()), transform_key)
            if key not in self._baseline:
                self._baseline[key] = self._measure(user, view, tracker, None, classes, 0.0, transform)
            return self._baseline[key]
        return self._measure(user, view, tracker, options, classes, leaked, transform, sybil)

    def _measure(self, user, view, tracker, options, classes, leaked, transform, sybil: int = 0) -> tuple[float, float]:
        task, test_other = self.task(user, view, tracker, options, classes, leaked, transform, sybil)
        pred_user, pred_other = TRACKERS[tracker](task)
        truth_other = [self.samples[i].identity for i in test_other]
        normal = accuracy([p if p != UNKNOWN else "" for p in pred_other], truth_other)
        return protection_rate(pred_user, user), normal

    def task(
        self,
        user: str,
        view: str,
        tracker: str,
        options: CloakOptions | None,
        classes: list[str] | None = None,
        leaked: float = 0.0,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        sybil: int = 0,
    ) -> tuple[TrackerTask, list[int]]:
        """What the tracker trains and is tested on for one user and condition, and the others' test photos."""
        classes = classes or sorted(self.splits)
        clean = self.clean_features(view)
        train_idx = [i for c in classes for i in self.splits[c].train]
        test_user = self.splits[user].test
        test_other = [i for c in classes if c != user for i in self.splits[c].test]
        cloaked = self.cloaked_images(user, options) if options is not None else {}
        user_train = self.splits[user].train
        n_leak = int(round(leaked * len(user_train)))
        leaked_idx = set(user_train[:n_leak])
        images: dict[int, np.ndarray] = {}
        for i in train_idx:
            if i in cloaked and i not in leaked_idx:
                images[i] = cloaked[i]
        fv = self.views[view]
        if transform is not None:
            # clean photos' transformed features are shared by every user: cache them per condition
            tkey = getattr(transform, "key", None) or id(transform)
            need = [i for i in train_idx if i not in images and (view, tkey, i) not in self._transformed]
            if need:
                for i, e in zip(need, fv.embed([transform(self.samples[i].rgb) for i in need])):
                    self._transformed[(view, tkey, i)] = e
            mine = [i for i in train_idx if i in images]
            mine_feats = dict(zip(mine, fv.embed([transform(images[i]) for i in mine]))) if mine else {}
            train_feats = np.stack([mine_feats[i] if i in mine_feats else self._transformed[(view, tkey, i)] for i in train_idx])
        else:
            changed = [i for i in train_idx if i in images]
            train_feats = clean[train_idx].copy()
            if changed:
                emb = fv.embed([images[i] for i in changed])
                pos = {i: k for k, i in enumerate(train_idx)}
                for i, e in zip(changed, emb):
                    train_feats[pos[i]] = e
        labels = [self.samples[i].identity for i in train_idx]
        if sybil and options is not None:  # the Sybil account: one more class, posted by the user
            syb = self.sybil_images(user, options, sybil)
            syb = [transform(x) for x in syb] if transform is not None else syb
            train_feats = np.concatenate([train_feats, fv.embed(syb)])
            labels = labels + [f"sybil-of-{user}"] * len(syb)
            if tracker == "end-to-end":
                raise ValueError("Sybil scenarios use the feature trackers")
        if tracker not in TRACKERS:
            raise ValueError(f"unknown tracker {tracker!r}; known: {', '.join(TRACKERS)}")
        samples = self.samples

        def shown(i: int) -> np.ndarray:
            img = images.get(i, samples[i].rgb)
            return transform(img) if transform else img

        task = TrackerTask(
            fv,
            train_feats,
            labels,
            clean[test_user],
            clean[test_other],
            train_images=lambda: [shown(i) for i in train_idx],
            test_user_images=lambda: [samples[i].rgb for i in test_user],
            test_other_images=lambda: [samples[i].rgb for i in test_other],
            seed=self.cfg.seed,
            epochs=self.cfg.end_to_end_epochs,
        )
        return task, test_other
