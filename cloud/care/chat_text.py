"""What a chat message may be: plain text, checked before anything is stored.

Messages are kept and returned exactly as written (after Unicode NFC normalisation), never
HTML-escaped in storage: escaping is the renderer's job, and the dashboard renders text nodes only.
What is refused: empty or whitespace-only text, text over the configured length, NUL and other
control characters (newline and tab are allowed), lone surrogates (not valid UTF-8), and
bidirectional overrides, which can make a message read differently from what it says.
"""

from __future__ import annotations

import unicodedata

_ALLOWED_CONTROLS = {"\n", "\t"}
_BIDI_OVERRIDES = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"}


class ChatTextError(ValueError):
    """A message that cannot be accepted; the text says why, for the sender."""


def clean_message(text: str, max_chars: int) -> str:
    """The message as it will be stored, or :class:`ChatTextError`."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ChatTextError("the message is not valid UTF-8") from None
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n"))
    if not text.strip():
        raise ChatTextError("the message is empty")
    if len(text) > max_chars:
        raise ChatTextError(f"the message is {len(text)} characters; at most {max_chars} are accepted")
    for ch in text:
        if ch in _BIDI_OVERRIDES:
            raise ChatTextError("the message contains a bidirectional override character")
        if unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS:
            raise ChatTextError(f"the message contains a control character (U+{ord(ch):04X})")
    return text


def clean_title(title: str | None, max_chars: int = 200) -> str:
    """A session title: one line, or empty."""
    if title is None:
        return ""
    cleaned = clean_message(title, max_chars) if title.strip() else ""
    if "\n" in cleaned:
        raise ChatTextError("the title must be one line")
    return cleaned.strip()
