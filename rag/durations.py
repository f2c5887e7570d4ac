"""Human durations ("90d", "6h", "30m", "1w") used for TTLs and refresh schedules."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
# Longer is not a TTL but a typo, and a timestamp that far out overflows (year 9999).
MAX_DURATION = timedelta(days=36500)


def parse_duration(text: str) -> timedelta:
    """`parse_duration("90d") == timedelta(days=90)`; raises ValueError with the allowed form."""
    match = _PATTERN.match(text or "")
    if not match:
        raise ValueError(
            f"invalid duration {text!r}: use a number followed by s, m, h, d or w (e.g. 30d, 6h)"
        )
    value = float(match.group(1))
    if value <= 0:
        raise ValueError(f"invalid duration {text!r}: must be greater than zero")
    try:
        duration = timedelta(**{_UNITS[match.group(2)]: value})
    except OverflowError:
        duration = timedelta.max
    if duration > MAX_DURATION:
        raise ValueError(f"invalid duration {text!r}: at most 100 years (36500d)")
    return duration
