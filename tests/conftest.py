"""Shared fixtures and the test tiers.

Tiers (``pytest -m unit`` / ``integration`` / ``system``):

- **unit**: no shared datasets and no face models; seconds. It may ask for none of the data or
  model fixtures below.
- **integration**: real models and the shared datasets, in-process.
- **system**: the daemon and the CLI as real subprocesses.

Every test says its tier where it is written; collection stops on one that does not.

The shared datasets are found at ``../shared/datasets`` (or ``$FAWKES_SHARED``); a test that
needs them and cannot find them fails with that path. The model cache is
``$FAWKES_CACHE_DIR`` when set (CI keeps one between runs), else a fresh folder per run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fawkes_engine.runtime import prepare

prepare()  # before any test imports torch: seeded cloaks repeat bit for bit (fawkes_engine.runtime)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAWKES_SHARED", ROOT.parent / "shared")) / "datasets"
DEV = SHARED / "dev"
LFW_DEV = SHARED / "lfw-dev"
TIERS = ("unit", "integration", "system")
DATA_OR_MODELS = {"dev", "lfw_dev", "detector", "cloaker"}  # fixtures a unit test may not use


def pytest_configure(config: pytest.Config) -> None:
    if "FAWKES_CACHE_DIR" not in os.environ:
        import tempfile

        os.environ["FAWKES_CACHE_DIR"] = tempfile.mkdtemp(prefix="fawkes-test-cache-")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test names its tier (unit: no datasets, no models; integration; system): a test that does not is an error."""
    unmarked = [item.nodeid for item in items if not any(item.get_closest_marker(t) for t in TIERS)]
    if unmarked:
        raise pytest.UsageError(f"tests without a tier mark ({', '.join(TIERS)}): {', '.join(unmarked)}")
    heavy = [i.nodeid for i in items if i.get_closest_marker("unit") and DATA_OR_MODELS & set(getattr(i, "fixturenames", ()))]
    if heavy:
        raise pytest.UsageError(f"unit tests that use datasets or models: {', '.join(heavy)}")


def _shared(path: Path) -> Path:
    if not path.is_dir():
        pytest.fail(f"test data not found at {path} (set FAWKES_SHARED, or run only the unit tier: pytest -m unit)")
    return path


@pytest.fixture(scope="session")
def dev() -> Path:
    return _shared(DEV)


@pytest.fixture(scope="session")
def lfw_dev() -> Path:
    return _shared(LFW_DEV)


@pytest.fixture(scope="session")
def detector():
    from fawkes_engine.faces import FaceDetector

    return FaceDetector()


@pytest.fixture(scope="session")
def cloaker():
    """One fast cloaker for the whole session (tests.helpers.worker.fast_cloaker)."""
    from tests.helpers.worker import fast_cloaker

    return fast_cloaker()
