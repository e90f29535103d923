"""Redis URLs in logs, reprs and the status key: the password never shows."""

from __future__ import annotations


def mask_url(url: str) -> str:
    """``redis://:secret@host`` -> ``redis://:***@host`` for logs and reprs."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user, colon, _ = creds.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"
