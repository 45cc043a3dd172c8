"""Text a database can store: what arrives from Slack, a model or a form, made storable.

Slack's JSON may carry a lone surrogate (`"\\ud800"`, which Python decodes to a code point
UTF-8 cannot encode, so neither SQLite nor PostgreSQL can bind it) or a NUL (`"\\u0000"`,
which PostgreSQL's `text` refuses). `storable` replaces each surrogate with U+FFFD, the
replacement character, and drops each NUL, so a question is answered and recorded rather
than lost to an encoding error. The Slack edge cleans what people type as it decodes it; the
ledger's drivers clean every text they bind, whatever its source (a model's answer, a
modal's field).
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` without NULs, every surrogate code point replaced by U+FFFD."""
    if text.isascii() and "\x00" not in text:
        return text  # the common case, without a regex pass
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else REPLACEMENT, text)
