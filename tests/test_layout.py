"""The package as installed and as laid out: import names that collide with nothing, light commands that stay
light, and an import graph with no cycles and no arrow that climbs back up."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # run outside the checkout: only the installed packages are importable there
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.unit
def test_installs_beside_python_daemon(tmp_path: Path) -> None:
    """`daemon` is python-daemon's import name; ours are fawkes_daemon and fawkes_engine."""
    out = _run("import daemon, fawkes_daemon.config, fawkes_engine.photo_io; print(daemon.DaemonContext.__module__)", tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "daemon.daemon"


@pytest.mark.unit
@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["retry"],
        ["release", "/nowhere/x.jpg"],
        ["secret", "check", "nextcloud"],
        ["service", "status", "--platform", "systemd"],
    ],
)
def test_light_commands_never_import_torch(tmp_path: Path, argv: list[str]) -> None:
    """`fawkes status` and friends answer in well under a second: they must not load torch (seconds on a busy machine)."""
    (tmp_path / "src").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"sources: [{{path: {tmp_path / 'src'}}}]\nto_share: {tmp_path / 'share'}\nstate_dir: {tmp_path / 'state'}\n")
    code = (
        "import sys\nfrom fawkes_daemon.cli import main\n"
        f"try:\n    main({[*argv, '--config', str(cfg)]!r})\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nprint('no torch')"
    )
    out = _run(code, tmp_path)
    assert "no torch" in out.stdout, out.stdout + out.stderr


@pytest.mark.unit
def test_no_module_is_over_400_lines() -> None:
    long = {
        p.relative_to(ROOT).as_posix(): n
        for folder in ("engine", "daemon")
        for p in (ROOT / folder).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, long


# every import name is a real path: the package is its folder's namesake under the design's top-level folder
PACKAGES = {"fawkes_engine": ROOT / "engine" / "fawkes_engine", "fawkes_daemon": ROOT / "daemon" / "fawkes_daemon"}
# plain operations on arrays and tensors: the bottom layer, below the detector's faces and the cloak
OPS = {"align", "memory", "integrity"} | {
    f"visibility.{m}" for m in ("ssim", "scales", "masking", "blemish", "ssimulacra2", "ssimulacra2_torch")
}


def _modules() -> dict[str, Path]:
    mods = {}
    for base in PACKAGES.values():
        for p in base.rglob("*.py"):
            parts = list(p.relative_to(base.parent).with_suffix("").parts)
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports, anywhere in it (lazy and TYPE_CHECKING imports count: mypy follows them).

    ``from pkg import sub`` is an arrow to ``pkg.sub`` only, not to the package's ``__init__``.
    """
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = (
                    ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
                    if node.level
                    else node.module or ""
                )
                subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods}
                targets.update(subs or {base})
                if len(subs) < len(node.names):
                    targets.add(base)
        resolved = set()
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name:
                resolved.add(t)
        graph[name] = resolved
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            if comp:
                found.append(sorted([v, *comp]))

    for v in graph:
        if v not in index:
            visit(v)
    return found


@pytest.mark.unit
def test_the_import_graph_has_no_cycles() -> None:
    assert cycles(import_graph()) == []


@pytest.mark.unit
def test_a_known_cycle_is_found() -> None:
    """The cycle finder itself: two modules that import each other, one through a lazy import."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.unit
def test_no_arrow_climbs_back_up() -> None:
    """The engine never imports the daemon; the ops import neither the cloak nor the detector's faces."""
    graph = import_graph()
    up = {m: sorted(t for t in ts if t.startswith("fawkes_daemon")) for m, ts in graph.items() if m.startswith("fawkes_engine")}
    assert not {m: t for m, t in up.items() if t}, up
    for op in OPS:
        bad = [t for t in graph[f"fawkes_engine.{op}"] if t.startswith(("fawkes_engine.cloak", "fawkes_engine.faces"))]
        assert not bad, (op, bad)


@pytest.mark.integration  # loads the registry's models
def test_builtin_extractor_names_match_the_registry(tmp_path: Path) -> None:
    """The config validates against a torch-free list; it must be exactly what engine.models registers at import.

    In a fresh interpreter: other tests register user ONNX extractors in this one.
    """
    from fawkes_engine.cloak.options import BUILTIN_EXTRACTORS

    out = _run("from fawkes_engine.models import list_extractors; print(','.join(list_extractors()))", tmp_path)
    assert out.returncode == 0, out.stderr
    assert tuple(out.stdout.strip().split(",")) == BUILTIN_EXTRACTORS


@pytest.mark.unit
def test_thorough_triples_the_modes_steps_and_leaves_explicit_steps_alone() -> None:
    from fawkes_daemon.config import CloakConfig
    from fawkes_engine.cloak.options import MODES, THOROUGH_STEPS, CloakOptions

    assert CloakConfig(thorough=True).to_options().budget.n_steps == MODES["mid"].steps * THOROUGH_STEPS
    assert CloakOptions.of(mode="high", thorough=True).budget.n_steps == MODES["high"].steps * THOROUGH_STEPS
    assert CloakOptions.of(steps=7, thorough=True).budget.n_steps == 7
    assert CloakOptions().budget.n_steps == MODES["mid"].steps


@pytest.mark.unit
def test_every_cloak_key_is_one_flag_of_the_same_name() -> None:
    """One table of user-facing cloak keys: the configuration model; `fawkes cloak`'s flags are derived from it."""
    import argparse

    from fawkes_daemon.cli.cloak_flags import add_cloak_flags, cloak_config
    from fawkes_daemon.config import CloakConfig

    p = argparse.ArgumentParser()
    add_cloak_flags(p)
    assert set(vars(p.parse_args([]))) == set(CloakConfig.model_fields)
    shown = set(re.findall(r"--[\w-]+", p.format_help()))
    for key in CloakConfig.model_fields:
        assert "--" + key.replace("_", "-") in shown, key
    args = p.parse_args(["--dssim-budget", "0.01", "--extractors", "sface,dlib", "--no-people", "--mode", "high"])
    c = cloak_config(args)
    assert (c.dssim_budget, c.extractors, c.people, c.mode, c.seed) == (0.01, ["sface", "dlib"], False, "high", 0)
    assert cloak_config(p.parse_args([])) == CloakConfig()
    from fawkes_engine.cloak.options import CloakOptions

    assert cloak_config(p.parse_args([])).to_options() == CloakOptions(), "a flag-less command must build the engine's defaults"


@pytest.mark.unit
def test_cloak_options_come_in_parts_each_consumer_reads_only_its_own() -> None:
    """Every option has one flat name and one part; the window, the objective and the goal are given a part, not the whole."""
    import inspect

    from fawkes_engine.cloak.objective import Goal, Objective
    from fawkes_engine.cloak.options import PART_OF, PARTS, CloakOptions, Perception, Targeting
    from fawkes_engine.cloak.window import VisibleWindow

    names = [f.name for cls in PARTS.values() for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names)) == len(PART_OF), "two parts share an option name"
    o = CloakOptions.of(mode="high", masking=0.5, seed=3, toward="photo")
    assert (o.budget.mode, o.perception.masking, o.runtime.seed, o.targeting.toward) == ("high", 0.5, 3, "photo")
    assert o.replace(seed=4).runtime.seed == 4 and o.runtime.seed == 3, "replace returns a copy"
    assert CloakOptions.of(**o.flat()) == o
    with pytest.raises(TypeError, match="unknown cloak option 'budget'"):
        CloakOptions.of(budget=0.01)
    assert inspect.signature(VisibleWindow.build).parameters["o"].annotation in (Perception, "Perception")
    assert inspect.signature(Objective).parameters["o"].annotation in (Targeting, "Targeting")
    assert inspect.signature(Goal.targets).parameters["o"].annotation in (Targeting, "Targeting")


@pytest.mark.unit
def test_import_names_are_the_folders_they_live_in() -> None:
    """An import name is a real path (no mapping for mypy, the layout test or a structure tool to know)."""
    import sys

    import fawkes_daemon
    import fawkes_engine

    for mod in (fawkes_engine, fawkes_daemon):
        assert Path(mod.__file__ or "").parent == PACKAGES[mod.__name__]
    hooks = [type(f).__module__ for f in sys.meta_path if "editable" in type(f).__module__]
    assert not hooks, f"an import hook maps the packages: {hooks}"


@pytest.mark.unit
def test_importing_the_engine_changes_nothing_in_the_process(tmp_path: Path) -> None:
    """The library leaves the environment alone; the application (``fawkes_daemon``) prepares it for cloaking."""
    code = (
        "import os\n"
        "before = dict(os.environ)\n"
        "import fawkes_engine, fawkes_engine.pipeline, fawkes_engine.cloak\n"
        # OpenCV's own import (cv2/__init__.py) sets LD_LIBRARY_PATH: not ours to change
        "print(sorted(k for k in os.environ if os.environ[k] != before.get(k) and k != 'LD_LIBRARY_PATH') == [])\n"
        "import fawkes_daemon\n"
        "print(os.environ.get('MKL_CBWR'), os.environ.get('PYTORCH_ENABLE_MPS_FALLBACK'))\n"
    )
    env_clean = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "PYTORCH_ENABLE_MPS_FALLBACK")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env_clean, timeout=120)
    assert out.stdout.split() == ["True", "AUTO,STRICT", "1"], out.stdout + out.stderr


@pytest.mark.unit
def test_the_cloak_keys_are_the_engines_options_written_once() -> None:
    """Defaults, descriptions and ranges come from the engine; the config's types are the engine's; every key reaches the engine."""
    import typing

    from fawkes_daemon.config import CloakConfig
    from fawkes_engine.cloak.options import PART_OF, PARTS
    from fawkes_engine.cloak.user_options import USER_OPTIONS, default

    assert set(CloakConfig.model_fields) == set(USER_OPTIONS)
    for name, f in CloakConfig.model_fields.items():
        assert f.description == USER_OPTIONS[name].help
        theirs = typing.get_type_hints(PARTS[PART_OF[name]])[name]
        if name == "extractors":  # a YAML list, a tuple in the engine
            assert (f.annotation, theirs, f.get_default(call_default_factory=True)) == (list[str], tuple[str, ...], list(default(name)))
        else:
            assert f.annotation == theirs and f.default == default(name), (name, f.annotation, theirs)
    changed = {
        "mode": "high",
        "dssim_budget": 0.01,
        "steps": 3,
        "extend_steps": 2,
        "max_budget": 0.02,
        "ssimulacra2_floor": 50.0,
        "extractors": ["dlib"],
        "target_mode": "reachable",
        "target_identity": "x",
        "stop_fraction": 0.5,
        "thorough": True,
        "seed": 7,
        "deterministic": False,
        "precision": "bf16",
        "compile": True,
        "blemish_levels": 9.0,
        "people": False,
    }
    assert set(changed) == set(USER_OPTIONS)
    flat = CloakConfig(**changed).to_options("cpu").flat()
    for k, v in changed.items():
        assert flat[k] == (tuple(v) if isinstance(v, list) else v), k
    assert flat["device"] == "cpu"
    with pytest.raises(ValueError, match="blemish_levels"):
        CloakConfig(blemish_levels=300)  # the engine's range, enforced by the configuration
