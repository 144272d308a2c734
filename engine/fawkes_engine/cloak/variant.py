"""Cloak variants as strings: ``"dlib-robust,sface:diversity_prob=0.5:steps=60"``.

Why strings: one `fawkes eval` command line must be able to name every variant of the
transfer table, so each technique is measured by the same protocol as the defaults. Input
diversity's parameters are named ``diversity_<field>`` (``diversity`` alone: on or off).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from fawkes_engine.cloak.diversity import Diversity
from fawkes_engine.cloak.options import CloakOptions

_FIXED = ("extractors", "device", "seed")


def flat_options(o: CloakOptions) -> dict[str, object]:
    """Every option by its variant name (the diversity object's fields flattened)."""
    out: dict[str, object] = {k: v for k, v in o.flat().items() if k != "diversity"}
    div = o.optimizer.diversity
    out["diversity"] = div.enabled
    out.update({f"diversity_{f.name}": getattr(div, f.name) for f in fields(Diversity) if f.name != "enabled"})
    return out


def _parse(raw: str, current: object, key: str) -> object:
    if isinstance(current, tuple):
        if current and isinstance(current[0], str):
            return tuple(v.strip() for v in raw.split("/"))
        return tuple(float(v) for v in raw.split("/"))
    if isinstance(current, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if key in ("steps", "extend_steps") or isinstance(current, int):
        return int(raw)
    if key in ("dssim_budget", "stop_fraction", "max_budget", "ssimulacra2_floor") or isinstance(current, float):
        return float(raw)
    return raw


def parse_variant(spec: str, base: CloakOptions) -> CloakOptions:
    """``"EXTRACTORS[:option=value...]"`` → the base options with that cloaking set and overrides, validated."""
    head, *overrides = spec.split(":")
    opts = base.replace(extractors=tuple(e.strip() for e in head.split(",") if e.strip()))
    for item in overrides:
        key, _, raw = item.partition("=")
        key = key.strip()
        flat = flat_options(opts)
        if key not in flat or key in _FIXED:
            raise ValueError(f"transfer variant {spec!r}: unknown cloak option {key!r}")
        value: Any = _parse(raw, flat[key], key)
        div = opts.optimizer.diversity
        if key == "diversity":
            opts = opts.replace(diversity=replace(div, enabled=bool(value)))
        elif key.startswith("diversity_"):
            changed: dict[str, Any] = {key[len("diversity_") :]: value}
            opts = opts.replace(diversity=replace(div, **changed))
        else:
            opts = opts.replace(**{key: value})
    opts.validate()
    return opts


def variant_label(options: CloakOptions, base: CloakOptions) -> str:
    """The cloaking set plus every option that differs from ``base`` (mode aside)."""
    mine, theirs = flat_options(options), flat_options(base)
    diffs = [f"{k}={v}" for k, v in mine.items() if k not in ("extractors", "mode") and v != theirs[k]]
    return ":".join([",".join(options.targeting.extractors), *diffs])
