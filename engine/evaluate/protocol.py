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

import io
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from engine.align import align_numpy
from engine.cloak import CloakOptions
from engine.cloak.variant import parse_variant, variant_label  # noqa: F401  (re-exported for callers of the protocol)
from engine.evaluate import detection as det
from engine.evaluate.trackers import UNKNOWN, EndToEndTracker, LinearTracker, SimilarityTracker, accuracy, protection_rate
from engine.faces import Face, FaceDetector, central_face
from engine.models import family, get_extractor
from engine.pipeline import PhotoCloaker
from engine.photo_io import EXTENSIONS, Photo, PhotoError, read_photo
from engine.targets import TargetBank

log = logging.getLogger(__name__)
NATIVE_DLIB = "dlib-native"


@dataclass
class Sample:
    path: Path
    identity: str
    rgb: np.ndarray
    face: Face


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
    sybil_goal: str = "photo"  # photo | centroid (engine.sybil.make_sybils)
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


def load_samples(root: Path, detector: FaceDetector) -> list[Sample]:
    out = []
    for d in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        for f in sorted(p for p in d.iterdir() if p.suffix.lower() in EXTENSIONS):
            try:
                rgb = read_photo(f).rgb8()
            except PhotoError as e:
                log.warning("%s", e)
                continue
            face = central_face(rgb, detector)
            if face is not None:
                out.append(Sample(f, d.name, rgb, face))
    return out


# -- countermeasures a tracker may apply to its training photos (paper §8) -------------------
def jpeg(q: int) -> Callable[[np.ndarray], np.ndarray]:
    def f(rgb: np.ndarray) -> np.ndarray:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=int(q))
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))

    f.key = f"jpeg={q}"  # type: ignore[attr-defined]
    return f


def blur(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    import cv2

    def f(rgb: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(rgb, (0, 0), float(sigma))

    f.key = f"blur={sigma}"  # type: ignore[attr-defined]
    return f


def noise(std: float, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    def f(rgb: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(seed + rgb.size)
        return np.clip(rgb.astype(np.float32) + rng.normal(0, std, rgb.shape), 0, 255).astype(np.uint8)

    f.key = f"noise={std}"  # type: ignore[attr-defined]
    return f


class FeatureView:
    """How one tracker extractor sees photos: re-detect, re-align, embed (ONNX; dlib-bin for native)."""

    def __init__(self, name: str, detector: FaceDetector) -> None:
        self.name = name
        self.detector = detector
        self._native = None
        if name == NATIVE_DLIB:
            self._native = _NativeDlib()
            self.metric, self.threshold = "euclidean", 0.6
        else:
            ext = get_extractor(name)
            self.ext = ext
            self.metric, self.threshold = ext.spec.metric, ext.spec.match_threshold

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
        if self._native is not None:
            return self._native.embed(images)
        return self.ext.embed_onnx(self.crops(images))


class _NativeDlib:
    """dlib's own pipeline end to end (HOG detector, 5-point landmarks, face chips, ResNet) from dlib-bin."""

    def __init__(self) -> None:
        from importlib import resources

        import dlib

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
        self.samples = load_samples(cfg.dataset, self.detector)
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
        self.views = {n: FeatureView(n, self.detector) for n in cfg.tracker_extractors}
        self._clean: dict[str, np.ndarray] = {}
        self._cloaked: dict[tuple, dict[int, np.ndarray]] = {}
        self.cloak_seconds: dict[str, list[float]] = {}
        self.dssim: dict[str, list[float]] = {}
        self.ssimulacra2: dict[str, list[float]] = {}
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
            for d in rng.permutation(dirs)[: self.cfg.sybil_pool]:
                files = sorted(p for p in Path(d).iterdir() if p.suffix.lower() in EXTENSIONS)
                if not files:
                    continue
                f = files[int(rng.integers(len(files)))]
                rgb = read_photo(f).rgb8()
                face = central_face(rgb, self.detector)
                if face is not None:
                    pool.append(Sample(f, Path(d).name, rgb, face))
            self._pool = pool
            self.say(f"Sybil candidate pool: {len(pool)} faces from {root}")
        return self._pool

    def sybil_images(self, user: str, options: CloakOptions, per_photo: int) -> list[np.ndarray]:
        """Cloaked candidate photos standing in for each of U's training photos (the first ``per_photo`` of each)."""
        from engine.sybil import make_sybils

        most = max(self.cfg.sybil)
        key = (user, repr(options))
        if key not in self._sybil:
            idx = self.splits[user].train
            pool = self.sybil_pool()
            pc = PhotoCloaker(options, detector=self.detector)
            t = time.perf_counter()
            made = make_sybils(
                [Photo(self.samples[i].rgb, "PNG") for i in idx], [Photo(s.rgb, "PNG") for s in pool], most,
                cloaker=pc.cloaker, detector=self.detector,
                user_faces=[self.samples[i].face for i in idx], candidate_faces=[s.face for s in pool], goal=self.cfg.sybil_goal,
            )
            per_user: list[list[np.ndarray]] = [[] for _ in idx]
            for m in made:
                per_user[m.user_index].append(m.photo.rgb)
                self.sybil_stats.append({"user": user, "dssim": m.face.dssim, "to_user_before": m.to_user_before, "to_user_after": m.to_user_after, "own_shift": m.own_shift})
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
        label = options.mode if options.dssim_budget is None else f"rho={options.dssim_budget}"
        if options != replace(self.cfg.cloak, mode=options.mode):
            label = f"{label} [{variant_label(options, self.cfg.cloak)}]"
        return label

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
        if tracker == "linear":
            t = LinearTracker(seed=self.cfg.seed).fit(train_feats, labels)
            pred_user, pred_other = t.predict(clean[test_user]), t.predict(clean[test_other])
        elif tracker == "similarity":
            t = SimilarityTracker(fv.threshold, fv.metric).fit(train_feats, labels)
            pred_user, pred_other = t.predict(clean[test_user]), t.predict(clean[test_other])
        elif tracker == "end-to-end":
            if view == NATIVE_DLIB:
                raise ValueError("end-to-end needs one of our extractors")
            train_imgs = [transform(images.get(i, self.samples[i].rgb)) if transform else images.get(i, self.samples[i].rgb) for i in train_idx]
            t = EndToEndTracker(fv.ext, epochs=self.cfg.end_to_end_epochs, seed=self.cfg.seed).fit(fv.crops(train_imgs), labels)
            pred_user = t.predict(fv.crops([self.samples[i].rgb for i in test_user]))
            pred_other = t.predict(fv.crops([self.samples[i].rgb for i in test_other]))
        else:
            raise ValueError(f"unknown tracker {tracker!r}")
        truth_other = [self.samples[i].identity for i in test_other]
        normal = accuracy([p if p != UNKNOWN else "" for p in pred_other], truth_other)
        return protection_rate(pred_user, user), normal


def _agg(values: list[float]) -> dict[str, float]:
    a = np.array(values, dtype=float)
    return {"mean": float(np.nanmean(a)), "std": float(np.nanstd(a)), "n": int(np.sum(~np.isnan(a)))}


def run(cfg: EvalConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Run every configured scenario; returns a JSON-able dict of rows plus the configuration."""
    ev = Evaluation(cfg, progress)
    say = ev.say
    say(f"protected users: {', '.join(ev.users)}")
    say(
        "target bank identities among tracker classes: "
        + (", ".join(ev.target_overlap) + " (excluded from nothing: results may be optimistic)" if ev.target_overlap else "none")
    )
    rows: list[dict] = []

    def record(
        scenario: str, variable: str, value, tracker: str, view: str, options: CloakOptions | None,
        classes_for: Callable[[str], list[str]] | None = None, **kw,
    ) -> None:
        """One row: every user measured, cloaked and baseline. ``classes_for(user)`` picks the tracker's classes."""
        if "transform" in kw:
            kw["transform_key"] = f"{scenario}={value}"
        prot, norm, bprot, bnorm = [], [], [], []
        for u in ev.users:
            kw_u = {**kw, "classes": classes_for(u)} if classes_for else kw
            p, n = ev.measure(u, view, tracker, options, **kw_u)
            bp, bn = ev.measure(u, view, tracker, None, **kw_u)
            prot.append(p)
            norm.append(n)
            bprot.append(bp)
            bnorm.append(bn)
        row = {
            "scenario": scenario,
            "variable": variable,
            "value": value,
            "tracker": tracker,
            "tracker_extractor": view,
            "cloak": None
            if options is None
            else {"mode": options.mode, "budget": options.budget, "extractors": list(options.extractors), "key": ev.cloak_key(options)},
            "protection": _agg(prot),
            "normal_accuracy": _agg(norm),
            "baseline_protection": _agg(bprot),
            "baseline_normal_accuracy": _agg(bnorm),
        }
        rows.append(row)
        say(
            f"{scenario:<14} {variable}={value!s:<6} {tracker:<10} {view:<11} protection {row['protection']['mean']:.0%} "
            f"(baseline {row['baseline_protection']['mean']:.0%}), normal acc {row['normal_accuracy']['mean']:.1%} "
            f"(baseline {row['baseline_normal_accuracy']['mean']:.1%})"
        )

    base = cfg.cloak
    for mode in cfg.modes if cfg.mode_rows else []:
        opts = replace(base, mode=mode)
        for view in cfg.tracker_extractors:
            for tracker in cfg.trackers:
                if tracker == "end-to-end" and (view != cfg.tracker_extractors[0] or mode != cfg.modes[0]):
                    continue  # fine-tuning is the costly tracker: main tracker model, first mode only
                record("mode", "mode", mode, tracker, view, opts)
    default = replace(base, mode=cfg.modes[0])
    main_view = cfg.tracker_extractors[0]
    for k in cfg.label_density:
        rng = np.random.default_rng(cfg.seed + k)
        others = sorted(c for c in ev.splits if c not in ev.users)

        def classes_for(u: str) -> list[str]:
            pick = rng.choice(others, size=min(max(k - 1, 1), len(others)), replace=False).tolist()
            return sorted({u, *pick})

        record("label_density", "identities", min(k, len(others) + 1), "linear", main_view, default, classes_for=classes_for)
    for r in cfg.leaked:
        for view in cfg.tracker_extractors:
            record("leaked", "leaked_fraction", r, "linear", view, default, leaked=r)
            for n in cfg.sybil:
                if n:
                    record(f"leaked+sybil{n}", "leaked_fraction", r, "linear", view, default, leaked=r, sybil=n)
    for spec in cfg.transfer:
        opts = parse_variant(spec, default)
        label = variant_label(opts, default)
        used = {family(e) for e in opts.extractors}
        feature_trackers = [t for t in cfg.trackers if t != "end-to-end"]
        for view in cfg.tracker_extractors:
            if view in opts.extractors:  # white-box: the cloak must first work against its own model
                for tracker in feature_trackers:
                    record("whitebox", "cloak", label, tracker, view, opts)
            if family(view) in used:
                continue  # leave-one-model-out: no member of the tracker's family helped make the cloak
            for tracker in feature_trackers:
                record("transfer", "cloak", label, tracker, view, opts)
                if cfg.transfer_jpeg:
                    record(f"transfer-jpeg{cfg.transfer_jpeg}", "cloak", label, tracker, view, opts, transform=jpeg(cfg.transfer_jpeg))
    if cfg.detection:
        rows.extend(detection_rows(ev, default, say))
    for q in cfg.jpeg:
        record("jpeg", "quality", q, "linear", main_view, default, transform=jpeg(q))
    for s in cfg.blur:
        record("blur", "sigma", s, "linear", main_view, default, transform=blur(s))
    for s in cfg.noise:
        record("noise", "std", s, "linear", main_view, default, transform=noise(s, cfg.seed))
    cfgd = asdict(cfg)
    cfgd["dataset"] = str(cfg.dataset)
    cfgd["sybil_candidates"] = str(cfg.sybil_candidates) if cfg.sybil_candidates else None
    return {
        "config": cfgd,
        "users": ev.users,
        "identities": len(ev.splits),
        "faces": len(ev.samples),
        "target_bank_overlap": ev.target_overlap,
        "cloak_seconds_per_face": {k: float(np.median(v)) for k, v in ev.cloak_seconds.items()},
        "dssim": {k: _agg(v) for k, v in ev.dssim.items()},
        "rows": rows,
        "sybil_images": _sybil_summary(ev.sybil_stats),
    }


def _sybil_summary(stats: list[dict]) -> dict:
    if not stats:
        return {}
    names = sorted(stats[0]["to_user_after"])
    out: dict = {"n": len(stats), "dssim": _agg([s["dssim"] for s in stats])}
    for n in names:
        out[n] = {
            "to_user_before": _agg([s["to_user_before"][n] for s in stats]),
            "to_user_after": _agg([s["to_user_after"][n] for s in stats]),
            "own_shift": _agg([s["own_shift"][n] for s in stats]),
            "nearer_user_than_own": float(np.mean([s["to_user_after"][n] < s["own_shift"][n] for s in stats])),
        }
    return out


def detection_rows(ev: Evaluation, default: CloakOptions, say: Callable[[str], None]) -> list[dict]:
    """Paper §8 detectors on every protected user, without and with each mitigation, and what each costs.

    Target closeness looks at U's fully cloaked class among the tracker's other classes plus
    the public identities of the target bank (where a target comes from). Two-cluster
    detection looks at U's class with ``detection_leaked`` of it clean. Thresholds: z > 2
    for closeness; for two clusters, the 95th percentile of the same score on normal classes.
    """
    cfg = ev.cfg
    bank = TargetBank.load()
    rows = []
    variants = [
        ("none", default),
        (f"stop at {cfg.stop_fraction:.0%} of the way", replace(default, stop_fraction=cfg.stop_fraction)),
        ("average-distance target", replace(default, target_mode="average")),
    ]
    for view in [v for v in cfg.tracker_extractors if v in bank.embeddings]:
        clean = ev.clean_features(view)
        ids = sorted(ev.splits)
        for label, opts in variants:
            closeness, fp_close, two, fp_two, prot = [], [], [], [], []
            for u in ev.users:
                others = [c for c in ids if c != u]
                cents = np.stack([clean[ev.splits[c].train].mean(0) for c in others])
                normal = np.concatenate([cents / np.linalg.norm(cents, axis=1, keepdims=True), bank.centroids(view)])
                closeness.append(det.closeness_z(ev.user_train_features(u, view, opts), normal))
                fp_close.append(float(np.mean(det.normal_closeness_z(normal)[: len(others)] > 2)))
                normal_two = [det.two_cluster_score(clean[ev.splits[c].train], cfg.seed) for c in others]
                thr = float(np.nanpercentile(normal_two, 95))
                two.append(det.two_cluster_score(ev.user_train_features(u, view, opts, cfg.detection_leaked), cfg.seed) > thr)
                fp_two.append(float(np.nanmean(np.array(normal_two) > thr)))
                p, _ = ev.measure(u, view, "linear", opts)
                prot.append(p)
            row = {
                "scenario": "detection",
                "variable": "mitigation",
                "value": label,
                "tracker": "linear",
                "tracker_extractor": view,
                "closeness_z": _agg(closeness),
                "closeness_detected": float(np.mean(np.array(closeness) > 2)),
                "closeness_false_positive": float(np.mean(fp_close)),
                "two_cluster_detected": float(np.mean(two)),
                "two_cluster_false_positive": float(np.mean(fp_two)),
                "protection": _agg(prot),
            }
            rows.append(row)
            say(
                f"detection {view:<6} {label:<28} closeness detected {row['closeness_detected']:.0%} (z {row['closeness_z']['mean']:+.2f}, "
                f"FP {row['closeness_false_positive']:.0%}); two-cluster detected {row['two_cluster_detected']:.0%} "
                f"(FP {row['two_cluster_false_positive']:.0%}); protection {row['protection']['mean']:.0%}"
            )
    return rows
