"""Two cloak variants on the same users, user by user: the difference in protection with its interval.

    python -m benchmarks.paired_protection results/protection/blemish-24.json:default \
        results/protection/floor-in-loop-24-0.012-84.json:"sface,dlib:dssim_budget=0.012:ssimulacra2_floor=84:floor_in_loop=84"

Each argument is ``JSON:VARIANT`` (a bench_protection result and one of its rows). Both must
hold the same users (the same seeded sample); every tracker column they share is compared:
the mean per-user difference (second − first) with a 95 % bootstrap interval over users, and
the medians of the continuous readouts beside it (r_self, the tracker's margin for the user).
Why: two rates of 24 users each have intervals of ±15 points, but the same users under two
variants differ far less than that; pairing is what can tell them apart.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _load(arg: str) -> tuple[list[str], dict[str, dict[str, object]], str]:
    path, _, variant = arg.partition(":")
    data = json.loads(Path(path).read_text())
    if variant not in data["readouts"]:
        raise SystemExit(f"{path}: no variant {variant!r} (has {', '.join(data['readouts'])})")
    return data["users"], data["readouts"][variant], f"{Path(path).stem}:{variant}"


def main() -> None:
    from fawkes_engine.evaluate.readouts import bootstrap_mean

    ap = argparse.ArgumentParser()
    ap.add_argument("first")
    ap.add_argument("second")
    args = ap.parse_args()
    users_a, a, name_a = _load(args.first)
    users_b, b, name_b = _load(args.second)
    if sorted(users_a) != sorted(users_b):
        raise SystemExit("the two results hold different users: pairing needs the same sample")
    print(f"{name_b} − {name_a}, {len(users_a)} users")
    for col in [c for c in a if c in b]:
        pa, pb = a[col]["protection_per_user"], b[col]["protection_per_user"]  # type: ignore[index]
        mean, lo, hi = bootstrap_mean([float(pb[u]) - float(pa[u]) for u in users_a])  # type: ignore[index]
        ra, rb = a[col]["r_self_median"], b[col]["r_self_median"]  # type: ignore[index]
        ma, mb = a[col]["margin_median"], b[col]["margin_median"]  # type: ignore[index]
        print(
            f"  {col:32s} {100 * mean:+6.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] points   r_self {ra:.3f} → {rb:.3f}   margin {ma:+.3f} → {mb:+.3f}"
        )


if __name__ == "__main__":
    main()
