"""The cloak options a user sets, written once: here their help and range, on the engine's dataclass their type and default.

Why here: the daemon's `cloak:` configuration section, `fawkes cloak`'s flags and the web page's
settings all show these options; each used to declare them again with its own defaults and
range checks, and they drifted. The daemon's :class:`~fawkes_daemon.config.CloakConfig` takes
every field's default from :func:`default` and its description and range from
:data:`USER_OPTIONS` (a test holds its types to the dataclass fields').

Torch-free, like :mod:`fawkes_engine.cloak.options`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fawkes_engine.cloak.options import BUILTIN_EXTRACTORS, MODES, PART_OF, PARTS


@dataclass(frozen=True)
class UserOption:
    help: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] = ()  # the values a string option takes (a Literal's values are its type's)


USER_OPTIONS: dict[str, UserOption] = {
    "mode": UserOption("DSSIM budget, SSIMULACRA2 floor and effort: low, mid or high", choices=tuple(MODES)),
    "dssim_budget": UserOption("custom DSSIM budget ρ, overriding the mode's (then no floor unless set)"),
    "steps": UserOption("optimization steps, overriding the mode's", ge=1),
    "extend_steps": UserOption(
        "at most this many more steps for a face not yet across its target (default: the mode's; 0 with steps)", ge=0
    ),
    "max_budget": UserOption(
        "the budget a face its own budget cannot carry across is cloaked again at (default: the mode's)", gt=0, lt=0.5
    ),
    "ssimulacra2_floor": UserOption("SSIMULACRA2 each face must keep (default: the mode's; none with dssim_budget; 0: none)", ge=0, le=100),
    "extractors": UserOption("the models cloaked against, comma list", choices=BUILTIN_EXTRACTORS),
    "target_mode": UserOption(
        "average: a target at typical distance (paper §8 mitigation against two-cluster detection); "
        "reachable: nearer than typical, still clearly someone else"
    ),
    "target_identity": UserOption("the target identity for target_mode fixed"),
    "stop_fraction": UserOption("stop once a face has covered this share of the way to its target (paper §8 mitigation)", gt=0, le=1),
    "thorough": UserOption("three times the mode's steps: more protection, for a GPU or a patient CPU"),
    "seed": UserOption("the seed of target choice and input diversity (same seed, same bytes)"),
    "deterministic": UserOption("on CUDA, crops made on the CPU so that seeded cloaks repeat exactly"),
    "precision": UserOption("the optimization's extractor passes in bf16/fp16 (faster on a GPU); goals and checks stay fp32"),
    "compile": UserOption("torch.compile the optimization's extractor passes (pays on a GPU, after a warm-up)"),
    "blemish_levels": UserOption(
        "no 3x3 patch of a face may change its mean luma by more than this many levels (0: no limit; costs protection)", ge=0, le=255
    ),
    "people": UserOption("group faces by person (clean embeddings): one direction per person"),
}


def default(name: str) -> Any:
    """The engine's default for a user option: its dataclass field's."""
    (f,) = [f for f in dataclasses.fields(PARTS[PART_OF[name]]) if f.name == name]
    if f.default is dataclasses.MISSING:
        raise TypeError(f"cloak option {name!r} has no plain default")
    return f.default
