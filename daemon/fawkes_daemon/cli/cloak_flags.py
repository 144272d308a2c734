"""The cloak's user-facing keys as command-line flags, derived from :class:`~fawkes_daemon.config.CloakConfig`.

Why derived: the keys were declared three times (the options, the configuration model, the
flags, plus renames such as ``--budget``); now the configuration model is the one table and each
flag is its key's name with dashes, its help the key's description.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable

from fawkes_daemon.config import CloakConfig
from fawkes_engine.cloak.user_options import USER_OPTIONS


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_cloak_flags(parser: argparse.ArgumentParser, only: Iterable[str] | None = None, defaults: dict[str, object] | None = None) -> None:
    """Add a flag per key of ``CloakConfig`` (or the keys in ``only``); unset flags leave the key's default."""
    defaults = defaults or {}
    for name, field in CloakConfig.model_fields.items():
        if only is not None and name not in only:
            continue
        ann = field.annotation
        args = typing.get_args(ann)
        base = next((a for a in args if a is not type(None)), ann) if isinstance(ann, types.UnionType) else ann
        kw: dict[str, typing.Any] = {"help": field.description, "default": defaults.get(name)}
        if base is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is typing.Literal:
            kw["choices"] = list(typing.get_args(base))
        elif typing.get_origin(base) is list:
            kw["type"] = lambda v: [x for x in v.split(",") if x]
            kw["metavar"] = "A,B"
        elif name == "mode":
            kw["choices"] = list(USER_OPTIONS[name].choices)
        else:
            kw["type"] = base
        parser.add_argument(_flag(name), dest=name, **kw)


def cloak_config(args: argparse.Namespace) -> CloakConfig:
    """The configuration the flags given describe (unset keys keep their defaults). Raises pydantic's ValidationError."""
    return CloakConfig(**{k: getattr(args, k) for k in CloakConfig.model_fields if getattr(args, k, None) is not None})
