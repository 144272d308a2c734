"""Fawkes Sync's daemon and command line: watching, the queue, schedules, state and output.

The application prepares the process for cloaking before anything imports torch
(:func:`fawkes_engine.runtime.prepare`): every ``fawkes`` command and every Ray actor starts here.
"""

from fawkes_engine.runtime import prepare

prepare()
