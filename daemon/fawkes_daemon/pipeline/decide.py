"""A photo's fate after its cloak: publish, escalate, hold or refuse — a pure function of plain facts and a policy.

Why pure: the rules (a face too small to cloak is never published unasked, a weak cloak is
published, made again at the next mode or held, a release overrides every hold) were written
inside the compute call, where they could only be tested with real models. Here they take
numbers and return a verdict; the daemon (:mod:`fawkes_daemon.pipeline.compute`) and `fawkes cloak`
call the same function, each with its own :class:`Policy`, so the two differ only where the
policies say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

WeakPolicy = Literal["publish", "escalate", "hold"]
NoFacePolicy = Literal["pass", "hold"]
Verdict = Literal["publish", "escalate", "hold", "refuse"]


@dataclass(frozen=True)
class Policy:
    """What to do with each kind of photo that is not simply cloaked."""

    no_face: NoFacePolicy = "pass"  # a photo without a face: published as it is, or held
    weak: WeakPolicy = "publish"  # a face not carried across its target
    # a face too small to cloak: held (it would be published uncloaked), or written with the others cloaked
    too_small: Literal["hold", "write"] = "hold"


# `fawkes cloak` writes what it can and reports the rest: the user runs it on purpose and reads the table
ONE_SHOT = Policy(no_face="pass", weak="publish", too_small="write")


@dataclass(frozen=True)
class Facts:
    """What the cloak of one photo gave, as plain data."""

    faces: int  # faces cloaked
    weak: int = 0  # of them, not carried across under every extractor
    unchanged: int = 0  # of them, left untouched (no change fitted the budget and floor)
    too_small: list[str] = field(default_factory=list)  # why each face too small to cloak was skipped
    can_escalate: bool = False  # a higher mode exists


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str | None = None


def decide(facts: Facts, release: bool, policy: Policy) -> Decision:
    """The verdict for one photo. ``release``: the user released it (every hold is lifted)."""
    if not release:
        if facts.too_small and policy.too_small == "hold":
            reasons = "; ".join(facts.too_small[:3])
            return Decision("hold", f"{len(facts.too_small)} face(s) too small to cloak ({reasons}); held until `fawkes release`")
        if not facts.faces and not facts.too_small and policy.no_face == "hold":
            return Decision("hold", "no face found; held (no_face: hold) until `fawkes release`")
    if facts.weak and policy.weak == "escalate" and facts.can_escalate:
        return Decision("escalate", f"{facts.weak} face(s) not carried across: cloaked again at the next mode")
    if facts.weak and policy.weak == "hold" and not release:  # a release publishes the best cloak it has
        return Decision("hold", f"{facts.weak} face(s) not carried across by the cloak (weak_cloak: hold); held until `fawkes release`")
    if facts.unchanged:  # a face the optimizer left untouched must never be published as "cloaked"
        return Decision("refuse", "a face could not be cloaked (no change within budget)")
    return Decision("publish")
