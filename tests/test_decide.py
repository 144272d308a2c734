"""The fate of a cloaked photo, for every policy, without models (fawkes_daemon.pipeline.decide)."""

from __future__ import annotations

import pytest

from fawkes_daemon.pipeline.decide import ONE_SHOT, Facts, Policy, decide

pytestmark = pytest.mark.unit

CLEAN = Facts(faces=2)
WEAK = Facts(faces=2, weak=1, can_escalate=True)
WEAK_AT_TOP = Facts(faces=2, weak=1, can_escalate=False)
TOO_SMALL = Facts(faces=1, too_small=["face 20 px wide, under 32"])
NO_FACE = Facts(faces=0)
UNTOUCHED = Facts(faces=1, unchanged=1)


@pytest.mark.parametrize("weak", ["publish", "escalate", "hold"])
def test_a_clean_cloak_is_published_under_every_policy(weak) -> None:
    assert decide(CLEAN, False, Policy(weak=weak)).verdict == "publish"


def test_publish_escalate_hold_for_a_weak_cloak() -> None:
    assert decide(WEAK, False, Policy(weak="publish")).verdict == "publish"
    assert decide(WEAK, False, Policy(weak="escalate")).verdict == "escalate"
    assert decide(WEAK_AT_TOP, False, Policy(weak="escalate")).verdict == "publish"  # no higher mode: published weak
    held = decide(WEAK, False, Policy(weak="hold"))
    assert held.verdict == "hold" and "weak_cloak: hold" in (held.reason or "")


def test_a_release_lifts_every_hold_and_publishes_the_cloak_it_has() -> None:
    for facts, policy in ((WEAK, Policy(weak="hold")), (TOO_SMALL, Policy()), (NO_FACE, Policy(no_face="hold"))):
        assert decide(facts, False, policy).verdict == "hold"
        assert decide(facts, True, policy).verdict == "publish"


def test_too_small_faces_are_held_by_the_daemon_and_written_by_the_one_shot_command() -> None:
    held = decide(TOO_SMALL, False, Policy())
    assert held.verdict == "hold" and "1 face(s) too small to cloak (face 20 px wide, under 32)" in (held.reason or "")
    assert decide(TOO_SMALL, False, ONE_SHOT).verdict == "publish"
    # with no_face: pass, a photo whose only face is too small is still held: it has a face
    assert decide(Facts(faces=0, too_small=["tiny"]), False, Policy(no_face="pass")).verdict == "hold"


def test_no_face_passes_or_holds_by_policy() -> None:
    assert decide(NO_FACE, False, Policy(no_face="pass")).verdict == "publish"
    held = decide(NO_FACE, False, Policy(no_face="hold"))
    assert held.verdict == "hold" and "no_face: hold" in (held.reason or "")


def test_an_untouched_face_is_refused_even_on_release_and_holds_come_first() -> None:
    for policy in (Policy(), ONE_SHOT):
        assert decide(UNTOUCHED, False, policy).verdict == "refuse"
        assert decide(UNTOUCHED, True, policy).verdict == "refuse"
    assert decide(Facts(faces=1, unchanged=1, weak=1), False, Policy(weak="hold")).verdict == "hold"
