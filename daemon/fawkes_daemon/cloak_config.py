"""The `cloak:` section of the configuration: the cloak's user-facing keys, and the engine's options they make.

Why its own module: the keys are the engine's (:mod:`fawkes_engine.cloak.user_options` holds their
defaults, descriptions and ranges), and the daemon's configuration, `fawkes cloak`'s flags and the
web page's settings read them from here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fawkes_engine.cloak.options import Budget, CloakOptions, Perception, Precision, Runtime, Targeting, TargetMode
from fawkes_engine.cloak.user_options import USER_OPTIONS, default


def option(name: str) -> Any:
    """A cloak key's pydantic field: the default is the engine's dataclass field's, the description and range
    :data:`fawkes_engine.cloak.user_options.USER_OPTIONS`' (written once, there)."""
    spec, value = USER_OPTIONS[name], default(name)
    if isinstance(value, tuple):  # a YAML list in the configuration, a tuple in the engine
        return Field(default_factory=lambda: list(value), description=spec.help, ge=spec.ge, gt=spec.gt, le=spec.le, lt=spec.lt)
    return Field(default=value, description=spec.help, ge=spec.ge, gt=spec.gt, le=spec.le, lt=spec.lt)


class CloakConfig(BaseModel):
    """The cloak's user-facing keys. The `cloak:` section of the configuration, and `fawkes cloak`'s,
    `fawkes eval`'s and `fawkes sybil`'s flags (``fawkes_daemon.cli.cloak_flags``) are derived from these fields:
    one name per knob (``dssim_budget`` is ``--dssim-budget``), its description the flag's help. Defaults,
    descriptions and ranges are the engine's (:func:`option`); the types are written here, for the type checker,
    and a test holds them to the engine's."""

    model_config = ConfigDict(extra="forbid")  # a mistyped key stops the daemon at start, naming it

    mode: str = option("mode")
    dssim_budget: float | None = option("dssim_budget")
    steps: int | None = option("steps")
    extend_steps: int | None = option("extend_steps")
    max_budget: float | None = option("max_budget")
    ssimulacra2_floor: float | None = option("ssimulacra2_floor")
    extractors: list[str] = option("extractors")
    target_mode: TargetMode = option("target_mode")
    target_identity: str | None = option("target_identity")
    stop_fraction: float | None = option("stop_fraction")
    thorough: bool = option("thorough")
    seed: int = option("seed")
    deterministic: bool = option("deterministic")
    precision: Precision = option("precision")
    compile: bool = option("compile")
    blemish_levels: float = option("blemish_levels")
    people: bool = option("people")  # embeddings are kept only in the state directory

    def to_options(self, device: str = "auto") -> CloakOptions:
        """The engine's options for this configuration: the one place the daemon and `fawkes cloak` build them."""
        return CloakOptions(
            budget=Budget(
                mode=self.mode,
                dssim_budget=self.dssim_budget,
                steps=self.steps,
                thorough=self.thorough,
                extend_steps=self.extend_steps,
                max_budget=self.max_budget,
                ssimulacra2_floor=self.ssimulacra2_floor,
            ),
            targeting=Targeting(
                extractors=tuple(self.extractors),
                target_mode=self.target_mode,
                target_identity=self.target_identity,
                stop_fraction=self.stop_fraction,
                people=self.people,
            ),
            perception=Perception(blemish_levels=self.blemish_levels),
            runtime=Runtime(
                seed=self.seed, device=device, deterministic=self.deterministic, precision=self.precision, compile=self.compile
            ),
        )

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        modes = USER_OPTIONS["mode"].choices
        if v not in modes:
            raise ValueError(f"must be one of {', '.join(modes)}")
        return v

    @field_validator("extractors")
    @classmethod
    def _extractors(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one extractor is needed")
        known = USER_OPTIONS["extractors"].choices
        unknown = [e for e in v if e not in known]
        if unknown:
            raise ValueError(f"unknown extractor(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
        return v
