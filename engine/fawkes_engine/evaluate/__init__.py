"""Measuring protection the way the paper does: trackers, the protocol, tables and plots."""

from fawkes_engine.evaluate.protocol import EvalConfig
from fawkes_engine.evaluate.scenarios import run

__all__ = ["EvalConfig", "run"]
