"""One parser for every option that takes a duration (``--since``, ``--gap``).

The spellings users already type -- ``90m``, ``12h``, ``2d``, ``1w``, ``30s`` -- and whatever
pandas' ``Timedelta`` reads (``1h30m``, ``3 days 4h``, ISO 8601 ``PT90M``). A bare number is
refused (pandas would read ``5`` as five nanoseconds), and so is a negative duration.
"""

from __future__ import annotations

import datetime as dt
import re
import warnings

from revcli.errors import ConfigError

# The short spellings, converted here: pandas deprecates the lower-case ``d`` and ``w`` units.
_SHORT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
EXAMPLES = "90m, 12h, 2d, 1w or 1h30m"


def parse(text: str, option: str) -> dt.timedelta:
    """``text`` as a duration of at least zero; ConfigError naming ``option`` otherwise."""
    match = _SHORT.match(text)
    if match:
        return dt.timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    refusal = ConfigError(f"{option} {text!r}: give a duration such as {EXAMPLES}")
    if not re.search(r"[A-Za-z]", text):
        raise refusal  # a bare number: no unit
    import pandas as pd

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = pd.Timedelta(text.strip())
    except (ValueError, TypeError, OverflowError):
        raise refusal from None
    if pd.isna(value) or value < pd.Timedelta(0):
        raise refusal
    return value.to_pytimedelta()
