"""Fawkes Sync's cloaking library: images in, cloaked images and measurements out.

Importing it changes nothing in the process; a program that cloaks calls
:func:`fawkes_engine.runtime.prepare` before torch loads (reproducible kernels, the MPS fallback,
heap tuning).
"""
