"""Redis URLs in logs, reprs and the status key: the password never shows."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

#: A query parameter: its separator and name, and its value.
_PARAM = re.compile(r"([?&;])([^=&;#]*)=([^&;#]*)")
#: A parameter name that says it carries a secret: ``password``, ``sentinel_password``, ``ssl_password`` (redis-py
#: reads all three from a URL's query), or one that says passwd, pwd, secret or token.
_SECRET_NAME = re.compile(r"(?i)password|passwd|pwd|secret|token")


def _mask_param(match: re.Match[str]) -> str:
    sep, name, _ = match.groups()
    # redis-py percent-decodes the name (parse_qs): "pass%77ord" is "password" to it, so to us too.
    return f"{sep}{name}=***" if _SECRET_NAME.search(unquote_plus(name)) else match.group(0)


def mask_url(url: str) -> str:
    """``redis://user:secret@host/0?password=x`` -> ``redis://user:***@host/0?password=***`` for logs and reprs.

    The password in the user part, and every query parameter whose name says password (or secret, token), are
    replaced, including an empty one's ``:`` (so ``redis://user:@h`` says a password part was given), and so is a
    parameter whose name says password only once percent-decoded (``pass%77ord``), as redis-py decodes it. The user
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
    return f"{scheme}://" + _PARAM.sub(_mask_param, rest)
