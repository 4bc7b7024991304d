"""display: how text that facedist did not write (paths, names, answers) is shown in what it
writes and says: bytes that are not UTF-8 (a path's) as \\xNN (display_text; discover.display_path
builds on it), and, in what users typed, control and bidirectional characters as \\xNN or
\\uNNNN too, at a bounded length (shown). Standard library only: a failure's message is shown
through it however broken the install.
"""
from __future__ import annotations

import codecs


def _escape(code: int) -> str:
    """How a character (or a byte) that is not shown as it is shows: \\xNN, or \\uNNNN."""
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _show_bytes(exc: UnicodeError):
    """Encoding error handler: an undecodable byte (kept as a lone surrogate) shows as \\xNN."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    bad = exc.object[exc.start:exc.end]
    return "".join(_escape(ord(c) - 0xDC00) if 0xDC80 <= ord(c) <= 0xDCFF else _escape(ord(c))
                   for c in bad), exc.end


DISPLAY_ERRORS = "facedist-display"  # an `errors=` for files opened for text: odd bytes as \\xNN
codecs.register_error(DISPLAY_ERRORS, _show_bytes)


def display_text(text: str) -> str:
    """A message as it can be printed: bytes that are not UTF-8 (from a path) as \\xNN, the rest
    as it is (paths in it are already display_path's)."""
    return text.encode("utf-8", DISPLAY_ERRORS).decode("utf-8")


# Characters a name may hold but no output shows as they are: C0 and C1 controls and DEL (on a
# terminal they ring, move the cursor, clear the screen, start escape sequences), the
# bidirectional marks, overrides and isolates (they reorder the text around them), and the line
# and paragraph separators.
_HIDDEN = [*range(0x20), *range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
           *range(0x2066, 0x206A), 0x2028, 0x2029]
_ESCAPED = {code: _escape(code) for code in _HIDDEN}
# characters of a name shown: names are refused beyond this, an older database may hold longer
SHOWN_MAX = 200


def shown(text: str, limit: int | None = SHOWN_MAX) -> str:
    """Text a user gave (a person's name, an answer) as every output shows it, on a terminal, in
    a CSV cell, JSON or a page: control, bidirectional and line-separator characters as \\xNN or
    \\uNNNN, bytes that are not UTF-8 as \\xNN (display_text), and at most `limit` characters,
    then "…". A backslash stays as it is (a name is no key: ids are), so showing twice changes
    nothing.

    >>> shown("Ana\\x1b[2J\\u202eX\\n"), shown("é" * 300)[-3:], len(shown("é" * 300))
    ('Ana\\\\x1b[2J\\\\u202eX\\\\x0a', 'éé…', 201)
    """
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return display_text(text.translate(_ESCAPED))
