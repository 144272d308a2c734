"""Secrets (push passwords) in the OS keyring, never in the config, logs, status or database.

Lookup order: the keyring (Secret Service, KWallet, macOS Keychain, Windows Credential
Locker), then the environment variable ``FAWKES_SECRET_<NAME>``, then a file
``<config dir>/secrets/<name>`` that only its owner may read (mode 0600). The last two are
the documented fallbacks for headless Linux, where no keyring backend is unlocked.

Every secret the daemon loads is registered with a logging filter that replaces it by
``***`` in any log record, as a second line of defence against an error message (an HTTP
library's, rclone's) that echoes a credential.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import platformdirs

SERVICE = "fawkes-sync"
ENV_PREFIX = "FAWKES_SECRET_"

_known: set[str] = set()


class SecretError(Exception):
    """A secret cannot be stored or found; ``str()`` says what to do."""


def env_name(name: str) -> str:
    return ENV_PREFIX + "".join(c if c.isalnum() else "_" for c in name).upper()


def secret_file(name: str) -> Path:
    return Path(platformdirs.user_config_dir(SERVICE)) / "secrets" / name


def no_backend_help(name: str) -> str:
    return (
        "no usable keyring backend (common on headless Linux). Fix: run a Secret Service "
        "(gnome-keyring or KWallet) in your session, or `pip install keyrings.alt`; or, as a fallback, "
        f"set {env_name(name)} in the service's environment, or put the secret alone in {secret_file(name)} "
        "with mode 0600"
    )


def _keyring():
    import keyring

    return keyring


def keyring_status() -> tuple[bool, str]:
    """(usable, backend description). Usable means a real backend, not keyring's 'fail' stub."""
    try:
        kr = _keyring().get_keyring()
    except Exception as e:  # a broken backend configuration
        return False, f"keyring unavailable: {e}"
    from keyring.backends import fail

    if isinstance(kr, fail.Keyring):
        return False, "no keyring backend"
    chain = getattr(kr, "backends", None)
    if chain is not None and not chain:
        return False, "no keyring backend"
    return True, f"{type(kr).__module__}.{type(kr).__name__}"


def set_secret(name: str, value: str) -> str:
    """Store in the keyring. Returns where it went."""
    if not value:
        raise SecretError("empty secret; nothing stored")
    ok, backend = keyring_status()
    if not ok:
        raise SecretError(no_backend_help(name))
    from keyring.errors import KeyringError

    try:
        _keyring().set_password(SERVICE, name, value)
    except KeyringError as e:
        raise SecretError(f"keyring refused to store {name!r} ({type(e).__name__}); {no_backend_help(name)}") from None
    return f"keyring ({backend})"


def delete_secret(name: str) -> bool:
    from keyring.errors import KeyringError, PasswordDeleteError

    try:
        _keyring().delete_password(SERVICE, name)
        return True
    except PasswordDeleteError:
        return False
    except KeyringError as e:
        raise SecretError(f"keyring refused to delete {name!r} ({type(e).__name__}); {no_backend_help(name)}") from None


def lookup(name: str) -> tuple[str, str] | None:
    """(value, where) or None. ``where`` names the store, never the value."""
    from keyring.errors import KeyringError

    try:
        v = _keyring().get_password(SERVICE, name)
    except KeyringError:
        v = None
    if v:
        return v, "keyring"
    v = os.environ.get(env_name(name))
    if v:
        return v, f"environment variable {env_name(name)}"
    f = secret_file(name)
    if f.is_file():
        mode = stat.S_IMODE(f.stat().st_mode)
        if mode & 0o077:
            raise SecretError(f"{f}: readable by others (mode {mode:o}); run `chmod 600 {f}`")
        v = f.read_text().strip()
        if v:
            return v, f"file {f}"
    return None


def get_secret(name: str) -> str:
    found = lookup(name)
    if found is None:
        ok, _ = keyring_status()
        hint = f"run `fawkes secret set {name}`" if ok else no_backend_help(name)
        raise SecretError(f"secret {name!r} not found: {hint}")
    register(found[0])
    return found[0]


def register(value: str) -> None:
    """Redact ``value`` from every log record from now on, however short (a short secret is still a secret)."""
    if value:
        _known.add(value)
        _install_filter()


def forget(value: str) -> None:
    """Stop redacting ``value`` (a secret that was replaced; tests that registered one)."""
    _known.discard(value)


def redact(text: str) -> str:
    for v in _known:
        text = text.replace(v, "***")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            msg = redact(record.getMessage())
            record.msg, record.args = msg, None
        return True


_filter = RedactingFilter()


def _install_filter() -> None:
    for h in logging.getLogger().handlers:
        if _filter not in h.filters:
            h.addFilter(_filter)
