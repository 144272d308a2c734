"""Daemon configuration: YAML validated by pydantic, with a default for every key.

Why strict: the daemon runs unattended for months; a typo in a key must stop it at start
with a message naming the key, not silently fall back to a default that leaks photos.
"""

from __future__ import annotations

import os
import re
from datetime import time as dtime
from pathlib import Path
from typing import Literal

import platformdirs
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from fawkes_daemon.cloak_config import CloakConfig
from fawkes_daemon.pipeline.decide import NoFacePolicy, WeakPolicy
from fawkes_daemon.yaml_keys import UniqueKeyLoader
from fawkes_engine.photo_io import MetadataPolicy

APP = "fawkes-sync"


def default_state_dir() -> Path:
    return Path(platformdirs.user_state_dir(APP))


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "config.yaml"


class ConfigError(Exception):
    """A configuration problem; ``str()`` names the key and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _anchored(v: Path, info: ValidationInfo) -> Path:
    """``~`` expanded; a relative path is taken relative to the config file's folder, never the current one.

    Why: ``fawkes status`` run from another folder must open the same database the service uses.
    """
    p = Path(v).expanduser()
    base = (info.context or {}).get("base")
    if not p.is_absolute():
        if base is None:
            raise ValueError(f"{v}: must be an absolute path (or relative to a config file)")
        p = Path(base) / p
    return Path(os.path.normpath(p))


def _inside(a: Path, b: Path) -> bool:
    """a is b or lies below it (both resolved)."""
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


class SourceConfig(_Strict):
    path: Path
    name: str | None = None  # sub-folder of to-share; default: the folder's name
    include: list[str] = Field(default_factory=lambda: ["*.jpg", "*.jpeg", "*.png", "*.webp", "*.tif", "*.tiff", "*.heic", "*.heif"])
    exclude: list[str] = Field(default_factory=list)
    polling: bool = False  # network filesystems (NFS, SMB) deliver no inotify events

    @field_validator("path")
    @classmethod
    def _expand(cls, v: Path, info: ValidationInfo) -> Path:
        return _anchored(v, info)

    @field_validator("name")
    @classmethod
    def _one_component(cls, v: str | None) -> str | None:
        # the name is a folder of to-share: "../x", "/x" or "a/b" would put outputs elsewhere
        if v is not None and (v in ("", ".", "..") or "/" in v or "\\" in v or "\0" in v):
            raise ValueError(f"{v!r} must be a single folder name (no '/', not '.' or '..')")
        return v

    @property
    def label(self) -> str:
        return self.name or self.path.name


def public_url(url: str) -> str:
    """A push URL as it may be shown (page, status, logs): no query string (it can carry an access key), no password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
SECRET_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def parse_window(text: str) -> tuple[dtime, dtime]:
    m = WINDOW.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a window like '22:00-07:00'")
    a, b = dtime(int(m[1]), int(m[2])), dtime(int(m[3]), int(m[4]))
    if a == b:
        raise ValueError(f"{text!r} is empty (start equals end)")
    return a, b


class ScheduleConfig(_Strict):
    """When work may run. Events are always recorded; only cloaking and pushing wait."""

    active_hours: list[str] = Field(default_factory=list)  # local-time windows 'HH:MM-HH:MM'; empty: always
    pause_on_battery: bool = False
    maintenance_at: str = "03:30"  # nightly state maintenance, local time
    retry_interval: float = Field(default=60.0, gt=0)  # seconds between checks for retries that are due

    @field_validator("active_hours")
    @classmethod
    def _windows(cls, v: list[str]) -> list[str]:
        for w in v:
            parse_window(w)
        return v

    @field_validator("maintenance_at")
    @classmethod
    def _clock(cls, v: str) -> str:
        if not re.match(r"^([01]\d|2[0-3]):[0-5]\d$", v):
            raise ValueError(f"{v!r} is not a time like '03:30'")
        return v


class PushConfig(_Strict):
    """Upload safe copies to a remote after they land in to-share. The password lives in the keyring."""

    kind: Literal["webdav", "rclone"]
    url: str | None = None  # webdav: e.g. https://cloud.example.org/remote.php/dav/files/USER/Photos
    user: str | None = None  # webdav user
    remote: str | None = None  # rclone: 'remote:path' from rclone's own config
    secret: str | None = None  # keyring entry: webdav app password / rclone config password
    rclone_binary: str = "rclone"
    timeout: float = Field(default=120.0, gt=0)
    retry_base: float = Field(default=30.0, gt=0)  # first retry delay; doubles per attempt
    retry_max: float = Field(default=3600.0, gt=0)  # ...up to this; pushes are never given up
    allow_insecure_http: bool = False  # plain http:// to another machine sends the password in clear

    @field_validator("secret")
    @classmethod
    def _secret_name(cls, v: str | None) -> str | None:
        if v is not None and not SECRET_NAME.match(v):
            raise ValueError("a secret name: letters, digits, '.', '_', '-' (the secret itself goes in the keyring)")
        return v

    @model_validator(mode="after")
    def _complete(self) -> PushConfig:
        if self.kind == "webdav":
            if not self.url or not self.url.startswith(("http://", "https://")):
                raise ValueError("webdav needs `url:` (http:// or https://)")
            if not self.user:
                raise ValueError("webdav needs `user:`")
            host = self.url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
            if self.url.startswith("http://") and host not in ("127.0.0.1", "localhost", "::1") and not self.allow_insecure_http:
                raise ValueError(
                    "plain http:// sends the WebDAV password (Basic auth) and the photos in clear; "
                    "use https://, or set `allow_insecure_http: true` if the network is yours"
                )
            if "@" in self.url.split("//", 1)[1].split("/", 1)[0]:
                raise ValueError("put no credentials in `url:`; the password belongs in the keyring (`fawkes secret set`)")
            if self.secret is None:
                self.secret = "webdav"
        if self.kind == "rclone" and (not self.remote or ":" not in self.remote):
            raise ValueError("rclone needs `remote:` as 'name:path'")
        return self


LOOPBACK = ("127.0.0.1", "::1", "localhost")


class UIConfig(_Strict):
    """The local web page (`fawkes ui`; with ``enabled`` the daemon serves it too)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)  # 0: any free port
    allow_remote: bool = False  # serve on a non-loopback address: anyone on that network who has the token sees the photos

    @model_validator(mode="after")
    def _loopback(self) -> UIConfig:
        if self.host not in LOOPBACK and not self.allow_remote:
            raise ValueError(f"host {self.host!r} is not loopback (127.0.0.1, ::1); set `allow_remote: true` to serve it to a network")
        return self


class ComputeConfig(_Strict):
    """Where cloaking runs: this process (default), or a Ray cluster (`pip install 'fawkes-sync[ray]'`)."""

    ray: str | None = None  # a cluster address ("auto": the one running on this machine, else a new local one; "local")
    actors: int | None = Field(default=None, ge=1)  # None: the cluster's CPUs / cpus_per_actor
    cpus_per_actor: float = Field(default=1.0, gt=0)  # also the torch threads of each actor
    gpus: bool = True  # pin a GPU per actor where the cluster has them
    in_flight: int | None = Field(default=None, ge=1)  # batches in flight (back-pressure); None: 2 per actor
    local_cpus: int | None = Field(default=None, ge=1)  # CPUs of a local cluster started by us (None: all)


class Config(_Strict):
    sources: list[SourceConfig]
    to_share: Path
    cloak: CloakConfig = Field(default_factory=CloakConfig)
    device: str = "auto"
    metadata: MetadataPolicy = "strip-location"
    no_face: NoFacePolicy = "pass"
    # a face the cloak did not carry across under every extractor: publish it, cloak it again at the next
    # mode's budget, or hold the photo until `fawkes release` (docs/decisions.md: what the figures support)
    weak_cloak: WeakPolicy = "publish"
    on_source_removed: Literal["keep", "delete"] = "keep"
    quiet_period: float = Field(default=5.0, ge=0)
    batch_size: int = Field(default=8, ge=1)
    rescan_interval: float = Field(default=900.0, gt=0)  # seconds between full rescans
    max_attempts: int = Field(default=5, ge=1)
    state_dir: Path = Field(default_factory=default_state_dir)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    push: PushConfig | None = None
    max_file_mb: float = Field(default=512.0, gt=0)  # larger files are refused before they are read
    ui: UIConfig = Field(default_factory=UIConfig)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        from fawkes_engine.device import DEVICE

        if not DEVICE.match(v):
            raise ValueError(f"{v!r} is not a device: auto, cpu, cuda, cuda:N or mps")
        return v

    @field_validator("to_share", "state_dir")
    @classmethod
    def _expand(cls, v: Path, info: ValidationInfo) -> Path:
        return _anchored(v, info)

    @model_validator(mode="after")
    def _no_overlap(self) -> Config:
        if not self.sources:
            raise ValueError("sources: at least one source folder is needed")
        labels = set()
        for i, s in enumerate(self.sources):
            if _inside(self.to_share, s.path) or _inside(s.path, self.to_share):
                raise ValueError(f"to_share ({self.to_share}) must not be inside or contain a source folder ({s.path})")
            for other in self.sources[i + 1 :]:
                if _inside(s.path, other.path) or _inside(other.path, s.path):
                    raise ValueError(f"sources: {s.path} and {other.path} overlap; each photo would get two safe copies")
            if not s.label or s.label in (".", ".."):
                raise ValueError(f"sources: {s.path} has no usable folder name; set `name:`")
            if s.label in labels:
                raise ValueError(f"sources: two sources share the name {s.label!r}; set `name:` on one")
            labels.add(s.label)
        if _inside(self.state_dir, self.to_share):
            raise ValueError(f"state_dir ({self.state_dir}) must not be inside to_share: the queue database would be synced to the cloud")
        for s in self.sources:
            if _inside(self.state_dir, s.path):
                raise ValueError(f"state_dir ({self.state_dir}) must not be inside a source folder ({s.path})")
        return self

    @property
    def staging_dir(self) -> Path:
        """Outputs are written here first, on to-share's own filesystem, so that the rename into it is atomic.

        Beside to-share, so that nothing partial is ever inside it; but where to-share is a mount
        point of its own (a USB disk, a NAS or cloud-drive mount) its parent is another filesystem
        and a rename across them fails, so there the staging folder is a hidden folder inside it
        (``.fawkes-staging``, whose ``.part`` files cloud clients skip; sweep at every start).
        """
        beside = self.to_share.parent / f".{self.to_share.name}.fawkes-staging"
        try:
            if os.stat(self.to_share).st_dev != os.stat(self.to_share.parent).st_dev:
                return self.to_share / STAGING_INSIDE
        except OSError:
            pass  # to-share does not exist yet: the worker creates it, then asks again
        return beside

    @property
    def db_path(self) -> Path:
        return self.state_dir / "queue.sqlite3"

    @property
    def heartbeat_path(self) -> Path:
        """The running daemon's pid and status line, rewritten every few seconds (read by the web page)."""
        return self.state_dir / "daemon.json"

    @property
    def backfill_state_path(self) -> Path:
        """A running Ray backfill's progress, rewritten as batches finish (read by `fawkes status`)."""
        return self.state_dir / "backfill.json"


STAGING_INSIDE = ".fawkes-staging"  # the staging folder inside a to-share that is its own mount point


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=UniqueKeyLoader) or {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror or e})") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    try:
        return Config.model_validate(raw, context={"base": path.resolve().parent})
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            problems.append(f"{key}: {err['msg']}")
        raise ConfigError(f"{path}: " + "; ".join(problems)) from None
