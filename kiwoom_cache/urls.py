"""Redis URLs in logs, reprs and the status key: the password never shows."""

from __future__ import annotations

import re

#: A query parameter that carries a secret, however it is spelled or encoded: ``password``,
#: ``sentinel_password``, ``ssl_password`` (redis-py reads all three from a URL's query).
_SECRET_PARAM = re.compile(r"(?i)([?&;](?:[^=&;#]*?)(?:password|passwd|pwd|secret|token)(?:[^=&;#]*)=)([^&;#]*)")


def mask_url(url: str) -> str:
    """``redis://user:secret@host/0?password=x`` -> ``redis://user:***@host/0?password=***`` for logs and reprs.

    The password in the user part, and every query parameter whose name says password (or secret, token), are
    replaced, including an empty one's ``:`` (so ``redis://user:@h`` says a password part was given). The user
    name and everything else stay, so the URL still says where and as whom.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # The last "@" ends the user part: a password may hold "/", "?" or "#" (masking too much is the safe error).
    creds, at, host = rest.rpartition("@")
    if at:
        user, colon, _ = creds.partition(":")
        rest = f"{user}{':***' if colon else ''}@{host}"
    return f"{scheme}://" + _SECRET_PARAM.sub(lambda m: f"{m.group(1)}***", rest)
