"""The scenarios of `fawkes eval`, each a registered function that adds its rows.

A scenario gets the run's :class:`Recorder` (which measures every protected user, cloaked
and baseline, and writes one row) and the default cloak options. They run in registry
order; each reads its own part of :class:`~fawkes_engine.evaluate.protocol.EvalConfig` and does
nothing when that part is empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from fawkes_engine.cloak import CloakOptions
from fawkes_engine.cloak.variant import parse_variant, variant_label
from fawkes_engine.evaluate import detection as det
from fawkes_engine.evaluate.countermeasures import blur, jpeg, noise
from fawkes_engine.evaluate.protocol import EvalConfig, Evaluation
from fawkes_engine.evaluate.views import view_family
from fawkes_engine.targets import TargetBank


def _agg(values: list[float]) -> dict[str, float]:
    a = np.array(values, dtype=float)
    return {"mean": float(np.nanmean(a)), "std": float(np.nanstd(a)), "n": int(np.sum(~np.isnan(a)))}


class Recorder:
    """Measures every protected user for one condition and keeps the row."""

    def __init__(self, ev: Evaluation) -> None:
        self.ev = ev
        self.rows: list[dict] = []

    def __call__(
        self,
        scenario: str,
        variable: str,
        value,
        tracker: str,
        view: str,
        options: CloakOptions | None,
        classes_for: Callable[[str], list[str]] | None = None,
        **kw,
    ) -> None:
        """One row: every user measured, cloaked and baseline. ``classes_for(user)`` picks the tracker's classes."""
        ev, say, rows = self.ev, self.ev.say, self.rows
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
            else {
                "mode": options.budget.mode,
                "budget": options.budget.rho,
                "extractors": list(options.targeting.extractors),
                "key": ev.cloak_key(options),
            },
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


Scenario = Callable[[Recorder, CloakOptions], None]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def add(f: Scenario) -> Scenario:
        SCENARIOS[name] = f
        return f

    return add


@scenario("mode")
def modes(record: Recorder, default: CloakOptions) -> None:
    """Protection per mode, every tracker and view (end-to-end: the main view and first mode only, it is costly)."""
    cfg = record.ev.cfg
    for mode in cfg.modes if cfg.mode_rows else []:
        opts = cfg.cloak.replace(mode=mode)
        for view in cfg.tracker_extractors:
            for tracker in cfg.trackers:
                if tracker == "end-to-end" and (view != cfg.tracker_extractors[0] or mode != cfg.modes[0]):
                    continue
                record("mode", "mode", mode, tracker, view, opts)


@scenario("label_density")
def label_density(record: Recorder, default: CloakOptions) -> None:
    """How many identities the tracker knows (fewer classes: each is easier to hit)."""
    ev, cfg = record.ev, record.ev.cfg
    for k in cfg.label_density:
        rng = np.random.default_rng(cfg.seed + k)
        others = sorted(c for c in ev.splits if c not in ev.users)

        def classes_for(u: str) -> list[str]:
            pick = rng.choice(others, size=min(max(k - 1, 1), len(others)), replace=False).tolist()
            return sorted({u, *pick})

        record(
            "label_density", "identities", min(k, len(others) + 1), "linear", cfg.tracker_extractors[0], default, classes_for=classes_for
        )


@scenario("leaked")
def leaked(record: Recorder, default: CloakOptions) -> None:
    """Some of the user's training photos reach the tracker clean (§7), with and without Sybil photos."""
    cfg = record.ev.cfg
    for r in cfg.leaked:
        for view in cfg.tracker_extractors:
            record("leaked", "leaked_fraction", r, "linear", view, default, leaked=r)
            for n in cfg.sybil:
                if n:
                    record(f"leaked+sybil{n}", "leaked_fraction", r, "linear", view, default, leaked=r, sybil=n)


@scenario("transfer")
def transfer(record: Recorder, default: CloakOptions) -> None:
    """Leave-one-model-out: each cloak variant against trackers of families it was not made with."""
    cfg = record.ev.cfg
    for spec in cfg.transfer:
        opts = parse_variant(spec, default)
        label = variant_label(opts, default)
        used = {view_family(e) for e in opts.targeting.extractors}
        feature_trackers = [t for t in cfg.trackers if t != "end-to-end"]
        for view in cfg.tracker_extractors:
            if view in opts.targeting.extractors:  # white-box: the cloak must first work against its own model
                for tracker in feature_trackers:
                    record("whitebox", "cloak", label, tracker, view, opts)
            if view_family(view) in used:
                continue  # no member of the tracker's family helped make the cloak
            for tracker in feature_trackers:
                record("transfer", "cloak", label, tracker, view, opts)
                if cfg.transfer_jpeg:
                    record(f"transfer-jpeg{cfg.transfer_jpeg}", "cloak", label, tracker, view, opts, transform=jpeg(cfg.transfer_jpeg))


@scenario("detection")
def detection(record: Recorder, default: CloakOptions) -> None:
    if record.ev.cfg.detection:
        record.rows.extend(detection_rows(record.ev, default, record.ev.say))


@scenario("countermeasures")
def countermeasures(record: Recorder, default: CloakOptions) -> None:
    """The tracker re-encodes, blurs or adds noise to its training photos (§8)."""
    cfg = record.ev.cfg
    main_view = cfg.tracker_extractors[0]
    for q in cfg.jpeg:
        record("jpeg", "quality", q, "linear", main_view, default, transform=jpeg(q))
    for s in cfg.blur:
        record("blur", "sigma", s, "linear", main_view, default, transform=blur(s))
    for s in cfg.noise:
        record("noise", "std", s, "linear", main_view, default, transform=noise(s, cfg.seed))


def run(cfg: EvalConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Run every configured scenario; returns a JSON-able dict of rows plus the configuration."""
    ev = Evaluation(cfg, progress)
    say = ev.say
    say(f"protected users: {', '.join(ev.users)}")
    say(
        "target bank identities among tracker classes: "
        + (", ".join(ev.target_overlap) + " (excluded from nothing: results may be optimistic)" if ev.target_overlap else "none")
    )
    record = Recorder(ev)
    default = cfg.cloak.replace(mode=cfg.modes[0])
    for run_scenario in SCENARIOS.values():
        run_scenario(record, default)
    rows = record.rows
    cfgd = asdict(cfg)
    cfgd["cloak"] = cfg.cloak.to_json()
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
        (f"stop at {cfg.stop_fraction:.0%} of the way", default.replace(stop_fraction=cfg.stop_fraction)),
        ("average-distance target", default.replace(target_mode="average")),
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
            row: dict[str, Any] = {
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
