"""Measuring protection the way the paper does: trackers, the protocol, tables and plots."""

from engine.evaluate.protocol import EvalConfig, run

__all__ = ["EvalConfig", "run"]
