"""Benchmarks: tables and JSON under bench-results/ (and results/ once chosen), medians and ratios from one run.

Every benchmark cloaks as the product does, so the process is prepared the same way before
torch loads (:func:`fawkes_engine.runtime.prepare`).
"""

from fawkes_engine.runtime import prepare

prepare()
