"""revcli.errors.first_line: how a library's long error becomes part of one Error line."""

from __future__ import annotations

from revcli.errors import first_line


def test_a_long_message_is_cut_with_an_ellipsis_and_no_trailing_blank() -> None:
    # botocore's upload error, cut where a blank falls at the limit (the line ended "occurred ")
    message = "Failed to upload /tmp/x.pkl to bucket/m.pkl: An error occurred (Bad) when calling"
    cut = first_line(RuntimeError(message), limit=message.index("(") + 1)
    assert cut == "Failed to upload /tmp/x.pkl to bucket/m.pkl: An error occurred…"
    assert first_line(RuntimeError(message)) == message


def test_only_the_first_line_and_the_type_when_there_is_no_message() -> None:
    assert first_line(ValueError("first\nsecond")) == "first"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(OSError("  \n")) == "OSError"
