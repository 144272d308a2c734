"""What must hold before cloaking starts (`fawkes run`, `fawkes cloak`): each check says why not, in one line, or None.

Why not in the configuration model: these checks import the engine (its models, torch), which
`fawkes status` and the other light commands must not pay for.
"""

from __future__ import annotations

from fawkes_engine.cloak.options import OPT_IN_EXTRACTORS


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be used on this machine (an accelerator torch does not see), or None.

    Checked where cloaking starts, like :func:`opt_in_problem`: a Mac without a usable MPS backend
    must hear it once at start, not as a failed batch every few seconds.
    """
    from fawkes_engine.device import DeviceUnavailable, available, pick_device

    try:
        pick_device(device, *available())
    except DeviceUnavailable as e:
        return str(e)
    return None


def opt_in_problem(extractors: list[str] | tuple[str, ...]) -> str | None:
    """Why the opt-in extractors named cannot be used (weights missing or not the pinned files), or None.

    Checked where cloaking starts (`fawkes run`, `fawkes cloak`), not in the model above: reading
    the weights imports the engine's models, which `fawkes status` must not pay for.
    """
    wanted = [e for e in extractors if e in OPT_IN_EXTRACTORS]
    if not wanted:
        return None
    from fawkes_engine.models.npm_weights import HUMAN_MODELS

    for e in wanted:
        for name in (f"{e}.json", f"{e}.bin"):
            try:
                HUMAN_MODELS.path(name)
            except (FileNotFoundError, RuntimeError) as err:
                return f"cloak.extractors: {e}: {err}"
    return None
