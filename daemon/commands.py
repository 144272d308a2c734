"""Subcommands beyond `models`; each module registers its own parser."""

from __future__ import annotations

import argparse

from daemon import cloak_command, daemon_commands, eval_command, service_commands, sybil_command


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cloak_command.register(sub)
    eval_command.register(sub)
    daemon_commands.register(sub)
    service_commands.register(sub)
    sybil_command.register(sub)
