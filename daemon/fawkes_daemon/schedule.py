"""When the daemon may work: active-hours windows and battery power.

Watching never pauses (events and rescans keep recording new photos in the queue);
only cloaking and pushing wait, so nothing is lost while the laptop is in use or
unplugged, and the backlog is worked off when the window opens.
"""

from __future__ import annotations

from datetime import datetime, time

from fawkes_daemon.config import ScheduleConfig, parse_window


def in_window(t: time, start: time, end: time) -> bool:
    """Half-open [start, end); a window whose end is before its start runs over midnight."""
    if start < end:
        return start <= t < end
    return t >= start or t < end


def on_battery() -> bool:
    """True only when a battery is known to be discharging (desktops and servers: False)."""
    try:
        import psutil

        b = psutil.sensors_battery()
    except Exception:
        return False
    return b is not None and b.power_plugged is False


class WorkPolicy:
    def __init__(self, config: ScheduleConfig, battery=on_battery) -> None:
        self.config = config
        self.windows = [parse_window(w) for w in config.active_hours]
        self._battery = battery

    def reason_to_wait(self, now: datetime | None = None) -> str | None:
        """None when work may run now, else a short reason for status lines and logs."""
        now = now or datetime.now()
        if self.windows and not any(in_window(now.time(), a, b) for a, b in self.windows):
            return "outside active hours (" + ", ".join(self.config.active_hours) + ")"
        if self.config.pause_on_battery and self._battery():
            return "on battery power"
        return None
