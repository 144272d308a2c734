"""The configuration: source names, relative paths, overlaps, unknown extractors and devices, includes, secrets, plain HTTP.

On real files, a real SQLite queue and real models; the ones about process behaviour (a restart, an exit
code) run ``fawkes`` as a subprocess.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fawkes_daemon.config import ConfigError, load_config
from tests.helpers.daemon import minimal_config
from tests.helpers.worker import config_file

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/b", ".."])
def test_a_source_name_must_be_one_folder_name(tmp_path: Path, name: str) -> None:
    cfg = config_file(tmp_path)
    raw = yaml.safe_load(cfg.read_text())
    raw["sources"][0]["name"] = name
    cfg.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="single folder name"):
        load_config(cfg)


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "conf"
    (folder / "src").mkdir(parents=True)
    (folder / "c.yaml").write_text("sources: [{path: src}]\nto_share: share\nstate_dir: state\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(folder / "c.yaml")
    assert cfg.sources[0].path == folder / "src" and cfg.to_share == folder / "share" and cfg.state_dir == folder / "state"


def test_overlapping_sources_are_refused(tmp_path: Path) -> None:
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "c.yaml").write_text(
        f"sources: [{{path: {tmp_path}/src}}, {{path: {tmp_path}/src/sub, name: inner}}]\nto_share: {tmp_path}/share\n"
    )
    with pytest.raises(ConfigError, match="overlap"):
        load_config(tmp_path / "c.yaml")


@pytest.mark.parametrize("bad", [{"cloak": {"extractors": ["arcface"]}}, {"device": "gpu"}])
def test_unknown_extractor_or_device_stops_the_start(tmp_path: Path, bad: dict) -> None:
    cfg = config_file(tmp_path)
    raw = {**yaml.safe_load(cfg.read_text()), **bad}
    cfg.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="extractor|device"):
        load_config(cfg)


def test_gif_is_not_in_the_default_include(tmp_path: Path) -> None:
    cfg = load_config(config_file(tmp_path))
    assert not any("gif" in p for p in cfg.sources[0].include)
    example = load_config(Path(__file__).resolve().parents[1] / "config.example.yaml")
    assert not any("gif" in p for p in example.sources[0].include)


def test_state_dir_inside_to_share_is_refused(tmp_path: Path) -> None:
    cfg = config_file(tmp_path)
    raw = yaml.safe_load(cfg.read_text())
    raw["state_dir"] = str(tmp_path / "share" / ".state")
    cfg.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="state_dir"):
        load_config(cfg)


def test_push_over_plain_http_to_another_machine_needs_an_opt_in(tmp_path: Path) -> None:
    cfg = config_file(tmp_path, push={"kind": "webdav", "url": "http://cloud.example.org/dav/", "user": "alice"})
    with pytest.raises(ConfigError, match="in clear"):
        load_config(cfg)
    raw = yaml.safe_load(cfg.read_text())
    raw["push"]["allow_insecure_http"] = True
    cfg.write_text(yaml.safe_dump(raw))
    assert load_config(cfg).push is not None


def test_short_secrets_are_redacted() -> None:
    from fawkes_daemon import secrets

    secrets.register("p4s")
    try:
        assert "p4s" not in secrets.redact("login p4s failed")
    finally:
        secrets.forget("p4s")  # no global left behind: "p4s" would be redacted from every later test's logs
    assert secrets.redact("login p4s failed") == "login p4s failed"


@pytest.mark.unit
def test_a_key_given_twice_stops_the_config_naming_it_and_its_lines(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    cfg = tmp_path / "config.yaml"
    cfg.write_text("sources:\n  - {path: src, name: cam}\nto_share: share\nstate_dir: state\nto_share: elsewhere\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert "'to_share' appears twice" in str(e.value) and "lines 3 and 5" in str(e.value) and str(cfg) in str(e.value)
    nested = tmp_path / "nested.yaml"
    nested.write_text("sources:\n  - {path: src, name: cam}\nto_share: share\ncloak:\n  mode: mid\n  mode: high\n")
    with pytest.raises(ConfigError, match="'mode' appears twice"):
        load_config(nested)
    assert load_config(minimal_config(tmp_path)).to_share.name == "share"  # the same keys once each load
