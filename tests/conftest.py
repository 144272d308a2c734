"""Shared fixtures: real data from ../shared/datasets, a private model cache per test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAWKES_SHARED", ROOT.parent / "shared")) / "datasets"
DEV = SHARED / "dev"
LFW_DEV = SHARED / "lfw-dev"


def pytest_configure(config: pytest.Config) -> None:
    if "FAWKES_CACHE_DIR" not in os.environ:
        import tempfile

        os.environ["FAWKES_CACHE_DIR"] = tempfile.mkdtemp(prefix="fawkes-test-cache-")
    if not SHARED.is_dir():
        raise pytest.UsageError(f"test data not found at {SHARED} (set FAWKES_SHARED)")


@pytest.fixture(scope="session")
def dev() -> Path:
    return DEV


@pytest.fixture(scope="session")
def lfw_dev() -> Path:
    return LFW_DEV


@pytest.fixture(scope="session")
def detector():
    from engine.faces import FaceDetector

    return FaceDetector()
