"""The package as installed: import names that collide with nothing, and light commands that stay light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # run outside the checkout: only the installed packages are importable there
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_installs_beside_python_daemon(tmp_path: Path) -> None:
    """`daemon` is python-daemon's import name; ours are fawkes_daemon and fawkes_engine."""
    out = _run("import daemon, fawkes_daemon.config, fawkes_engine.photo_io; print(daemon.DaemonContext.__module__)", tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "daemon.daemon"


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


def test_no_engine_module_is_over_about_400_lines() -> None:
    long = {p.relative_to(ROOT).as_posix(): n for p in (ROOT / "engine").rglob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long


def test_builtin_extractor_names_match_the_registry(tmp_path: Path) -> None:
    """The config validates against a torch-free list; it must be exactly what engine.models registers at import.

    In a fresh interpreter: other tests register user ONNX extractors in this one.
    """
    from fawkes_engine.cloak.options import BUILTIN_EXTRACTORS

    out = _run("from fawkes_engine.models import list_extractors; print(','.join(list_extractors()))", tmp_path)
    assert out.returncode == 0, out.stderr
    assert tuple(out.stdout.strip().split(",")) == BUILTIN_EXTRACTORS


def test_thorough_triples_the_modes_steps_and_leaves_explicit_steps_alone() -> None:
    from fawkes_daemon.config import CloakConfig
    from fawkes_engine.cloak.options import MODES, THOROUGH_STEPS, CloakOptions

    assert CloakConfig(thorough=True).to_options().n_steps == MODES["mid"].steps * THOROUGH_STEPS
    assert CloakOptions(mode="high", thorough=True).n_steps == MODES["high"].steps * THOROUGH_STEPS
    assert CloakOptions(steps=7, thorough=True).n_steps == 7
    assert CloakOptions().n_steps == MODES["mid"].steps
