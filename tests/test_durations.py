"""One duration parser for --since and --gap."""

from __future__ import annotations

import datetime as dt

import pytest

from revcli import compare, durations, split
from revcli.errors import ConfigError


@pytest.mark.parametrize(("text", "expected"), [
    ("90m", dt.timedelta(minutes=90)), ("12h", dt.timedelta(hours=12)),
    ("2d", dt.timedelta(days=2)), ("1w", dt.timedelta(weeks=1)), ("30s", dt.timedelta(seconds=30)),
    ("1.5h", dt.timedelta(minutes=90)), ("7D", dt.timedelta(days=7)),
    ("1h30m", dt.timedelta(minutes=90)), ("PT90M", dt.timedelta(minutes=90)),
    ("3 days 4h", dt.timedelta(days=3, hours=4)),
])
def test_the_spellings_users_type_and_pandas_reads(text: str, expected: dt.timedelta) -> None:
    assert durations.parse(text, "--gap") == expected
    assert split.parse_gap(text) == expected  # --gap 90m like --since 90m
    now = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    assert compare.parse_since(text, now) == now - expected


@pytest.mark.parametrize("text", ["5", "abc", "-2d", "2M", "1y", "", "7 parsecs"])
def test_a_bare_number_or_nonsense_is_one_error_naming_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--gap .*give a duration such as 90m"):
        durations.parse(text, "--gap")


def test_no_gap_is_zero() -> None:
    assert split.parse_gap(None) == split.parse_gap("") == dt.timedelta(0)
