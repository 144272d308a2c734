"""Service units, `fawkes service`, sd_notify, schedules and secrets, with real processes and files."""

from __future__ import annotations

import os
import plistlib
import shutil
import socket
import subprocess
import sys
from datetime import datetime, time
from pathlib import Path

import pytest

from fawkes_daemon.config import ConfigError, ScheduleConfig, load_config
from fawkes_daemon.schedule import WorkPolicy, in_window
from fawkes_daemon.service import exec_args, render_launchd_plist, render_systemd_unit
from fawkes_daemon.state_db import StateDB
from tests.helpers.daemon import DaemonProc, counts, status, wait_for, write_config

ROOT = Path(__file__).resolve().parents[1]


def fawkes(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", *args], capture_output=True, text=True, input=stdin, env={**os.environ, **(env or {})}
    )


def file_keyring_env(tmp: Path) -> dict[str, str]:
    """keyrings.alt's plaintext file backend in a private data dir: a real backend, no desktop needed."""
    return {
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp / "data"),
        "XDG_CONFIG_HOME": str(tmp / "xdgconfig"),
    }


# -- units ------------------------------------------------------------------------------------
@pytest.mark.unit
def test_repository_unit_files_are_the_rendered_ones() -> None:
    unit = render_systemd_unit(
        exec_args(Path("/home/you/.config/fawkes-sync/config.yaml"), "/home/you/.local/share/fawkes-sync/venv/bin/python")
    )
    assert (ROOT / "systemd" / "fawkes-sync.service").read_text() == unit
    plist = render_launchd_plist(
        exec_args(
            Path("/Users/you/Library/Application Support/fawkes-sync/config.yaml"), "/Users/you/.local/share/fawkes-sync/venv/bin/python"
        ),
        Path("/Users/you/Library/Logs/fawkes-sync"),
    )
    assert (ROOT / "systemd" / "org.fawkes-sync.daemon.plist").read_bytes() == plist


@pytest.mark.unit
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    cfg = tmp_path / "my config.yaml"  # a space and a quote-worthy path
    unit = tmp_path / "fawkes-sync.service"
    unit.write_text(render_systemd_unit(exec_args(cfg)))
    (tmp_path / "run").mkdir()
    r = subprocess.run(
        ["systemd-analyze", "--user", "verify", str(unit)],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "run")},
    )
    complaints = [ln for ln in (r.stdout + r.stderr).splitlines() if "fawkes-sync.service" in ln]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr
    # the check is real: a broken unit is reported
    unit.write_text(unit.read_text().replace("Type=notify", "Type=bogus"))
    r = subprocess.run(
        ["systemd-analyze", "--user", "verify", str(unit)],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "run")},
    )
    assert "bogus" in r.stdout + r.stderr
    text = render_systemd_unit(exec_args(cfg))
    for line in ("Type=notify", "Restart=on-failure", "IOSchedulingClass=idle", "Nice=15", '"' + str(cfg) + '"'):
        assert line in text
    assert "PrivateDevices" not in text.replace("# No PrivateDevices=", "")


@pytest.mark.system
def test_service_install_status_uninstall_in_a_temporary_home(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "XDG_CONFIG_HOME": ""}
    env = {k: v for k, v in {**os.environ, **env}.items() if v}
    r = subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "service", "install", "--platform", "systemd", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    unit = home / ".config" / "systemd" / "user" / "fawkes-sync.service"
    text = unit.read_text()
    assert f"ExecStart={sys.executable} -m fawkes_daemon.cli run --config {config.resolve()}" in text
    assert "systemctl --user enable --now fawkes-sync.service" in r.stdout
    assert "health: sources readable" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "service", "install", "--platform", "launchd", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    plist = plistlib.loads((home / "Library" / "LaunchAgents" / "org.fawkes-sync.daemon.plist").read_bytes())
    assert plist["ProgramArguments"] == [sys.executable, "-m", "fawkes_daemon.cli", "run", "--config", str(config.resolve())]
    assert plist["KeepAlive"] and plist["LowPriorityIO"] and plist["ProcessType"] == "Background"
    assert "launchctl bootstrap gui/" in r.stdout
    # health check: an unreadable (here: vanished) source folder is named in a warning
    shutil.rmtree(tmp_path / "src")
    r = subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "service", "status", "--platform", "systemd", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert "installed" in r.stdout
    assert f"warning: source folder {tmp_path / 'src'}: does not exist" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "service", "uninstall", "--platform", "systemd", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0 and not unit.exists()
    assert "systemctl --user disable --now fawkes-sync.service" in r.stdout


@pytest.mark.unit
@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_health_names_an_unreadable_source(tmp_path: Path) -> None:
    from fawkes_daemon import health

    config = load_config(write_config(tmp_path))
    (tmp_path / "src").chmod(0)
    try:
        assert any("cannot be read" in p for p in health.problems(config))
    finally:
        (tmp_path / "src").chmod(0o755)


# -- sd_notify and schedules, on the real daemon ----------------------------------------------------
@pytest.mark.system
def test_daemon_notifies_ready_status_and_stopping_and_waits_outside_active_hours(dev: Path, tmp_path: Path) -> None:
    now = datetime.now()
    closed = f"{(now.hour + 2) % 24:02d}:00-{(now.hour + 3) % 24:02d}:00"  # a window that is not now
    config = write_config(tmp_path, schedule={"active_hours": [closed]})
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(60)
    d = DaemonProc(config, tmp_path / "daemon.log", env={"NOTIFY_SOCKET": str(sock_path)})
    d.start()
    try:
        ready = sock.recv(4096).decode()
        while "READY=1" not in ready:  # a periodic STATUS may come first
            ready = sock.recv(4096).decode()
        assert "STATUS=queue: 0 pending" in ready
        assert f"waiting: outside active hours ({closed})" in ready
        shutil.copy(dev / "faces" / "Tom_Hanks" / "1.jpg", tmp_path / "src" / "a.jpg")
        wait_for(lambda: counts(config)["pending"] == 1, 60, "the photo to be queued")
        msg = sock.recv(4096).decode()  # the periodic STATUS line reflects the queue
        while "1 pending" not in msg:
            msg = sock.recv(4096).decode()
        assert msg.startswith("STATUS=") and "waiting: outside active hours" in msg
        assert status(config)["waiting"].startswith("outside active hours")
        assert not (tmp_path / "share" / "cam" / "a.jpg").exists()  # cloaking waits; watching did not
        assert d.stop() == 0
        rest = []
        sock.settimeout(5)
        try:
            while True:
                rest.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
        assert "STOPPING=1" in rest
    finally:
        if d.proc and d.proc.poll() is None:
            d.kill()
        sock.close()
    # inside the window the same queue is worked off
    config = write_config(tmp_path, schedule={"active_hours": [f"{(now.hour + 23) % 24:02d}:00-{(now.hour + 2) % 24:02d}:00", closed]})
    d = DaemonProc(config, tmp_path / "daemon.log")
    d.start()
    try:
        wait_for(lambda: (tmp_path / "share" / "cam" / "a.jpg").exists(), 180, "the queued photo to be cloaked")
    finally:
        d.stop()


@pytest.mark.unit
def test_windows_over_midnight_and_battery_policy() -> None:
    assert in_window(time(23, 30), time(22), time(7)) and in_window(time(6, 59), time(22), time(7))
    assert not in_window(time(7), time(22), time(7)) and not in_window(time(12), time(22), time(7))
    assert in_window(time(9), time(9), time(17)) and not in_window(time(17), time(9), time(17))
    noon = datetime(2026, 1, 1, 12, 0)
    assert WorkPolicy(ScheduleConfig(active_hours=["22:00-07:00"])).reason_to_wait(noon) == "outside active hours (22:00-07:00)"
    assert WorkPolicy(ScheduleConfig(active_hours=["22:00-07:00", "11:00-13:00"])).reason_to_wait(noon) is None
    on_batt = ScheduleConfig(pause_on_battery=True)
    assert WorkPolicy(on_batt, battery=lambda: True).reason_to_wait(noon) == "on battery power"
    assert WorkPolicy(on_batt, battery=lambda: False).reason_to_wait(noon) is None
    assert WorkPolicy(ScheduleConfig(), battery=lambda: True).reason_to_wait(noon) is None  # not asked to pause


@pytest.mark.unit
def test_schedule_and_push_config_errors_name_the_key(tmp_path: Path) -> None:
    for extra, key in [
        ({"schedule": {"active_hours": ["25:00-07:00"]}}, "schedule.active_hours"),
        ({"schedule": {"maintenance_at": "3am"}}, "schedule.maintenance_at"),
        ({"push": {"kind": "webdav", "user": "u"}}, "push"),
        ({"push": {"kind": "webdav", "url": "https://u:pw@host/dav", "user": "u"}}, "push"),
        ({"push": {"kind": "rclone", "remote": "nocolon"}}, "push"),
        ({"push": {"kind": "webdav", "url": "https://h/", "user": "u", "password": "x"}}, "push.password"),
    ]:
        with pytest.raises(ConfigError) as e:
            load_config(write_config(tmp_path, **extra))
        assert key in str(e.value), str(e.value)


@pytest.mark.unit
def test_maintenance_checks_and_truncates(tmp_path: Path) -> None:
    q = StateDB(tmp_path / "q.sqlite3").queue
    q.add("cam", "a.jpg", 1, 1)
    q.pushes.add("cam/a.jpg", "0" * 64)
    info = q.maintain()
    assert info["integrity"] == "ok"
    assert (tmp_path / "q.sqlite3-wal").stat().st_size == 0
    assert q.pushes.counts()["pending"] == 1  # nothing live was pruned


# -- secrets ---------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_secret_set_check_delete_with_a_file_keyring(tmp_path: Path) -> None:
    env = file_keyring_env(tmp_path)
    r = fawkes("secret", "set", "webdav", env=env, stdin="s3cret-app-pw\n")
    assert r.returncode == 0 and "stored in the keyring" in r.stdout, r.stderr
    assert "s3cret-app-pw" not in r.stdout + r.stderr
    assert "found in the keyring" in fawkes("secret", "check", "webdav", env=env).stdout
    assert fawkes("secret", "delete", "webdav", env=env).returncode == 0
    assert fawkes("secret", "check", "webdav", env=env).returncode == 1


@pytest.mark.unit
def test_no_keyring_backend_names_the_fix_and_fallbacks_work(tmp_path: Path) -> None:
    env = {**file_keyring_env(tmp_path), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    r = fawkes("secret", "set", "webdav", env=env, stdin="pw-1234\n")
    assert r.returncode == 1
    line = r.stderr.strip()
    assert "no usable keyring backend" in line and "FAWKES_SECRET_WEBDAV" in line and "0600" in line
    # fallback 1: the environment
    assert (
        "environment variable FAWKES_SECRET_WEBDAV"
        in fawkes("secret", "check", "webdav", env={**env, "FAWKES_SECRET_WEBDAV": "pw-1234"}).stdout
    )
    # fallback 2: a file only its owner can read
    f = tmp_path / "xdgconfig" / "fawkes-sync" / "secrets" / "webdav"
    f.parent.mkdir(parents=True)
    f.write_text("pw-1234\n")
    f.chmod(0o644)
    r = fawkes("secret", "check", "webdav", env=env)
    assert r.returncode == 1 and "chmod 600" in r.stderr
    f.chmod(0o600)
    assert "found in the file" in fawkes("secret", "check", "webdav", env=env).stdout
