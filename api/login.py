"""The browser's way in when auth is on: a login form that trades an API key for an HttpOnly cookie.

``EventSource`` cannot send an ``Authorization`` header, so the dashboard relies on a cookie, which the
browser sends with ``fetch`` and ``EventSource`` alike (and on every reconnect, so ``Last-Event-ID`` resume
works unchanged). Chosen over a token in the query string, which would land in access logs, browser
history and ``Referer`` headers. The cookie holds the key itself, so any replica can check it with no shared
session store and a revoked key stops working at once; ``HttpOnly`` keeps it away from page scripts.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import KeyStore, clear_cookie, set_cookie

#: A login form is a few hundred bytes; anything much larger is not one.
MAX_FORM: Final = 4096
#: Characters a key may have to travel in a cookie (generated keys are base64url); others are refused.
COOKIE_SAFE: Final = re.compile(r"[A-Za-z0-9._~+/=-]{1,512}")
PAGE: Final = (Path(__file__).resolve().parent / "static" / "login.html").read_text(encoding="utf-8")


def safe_next(target: str) -> str:
    """Only a path on this site (never ``//host`` or ``/\\host``, which browsers treat as another origin)."""
    if not target.startswith("/") or target.startswith(("//", "/\\")) or len(target) > 2048:
        return "/"
    return target


def cross_site(request: Request) -> bool:
    """A form posted from another site (login CSRF: it would log the victim in with the attacker's key).

    Browsers send ``Sec-Fetch-Site`` on every request (same-origin, same-site, cross-site, none); it decides
    when present. Without it (older browsers) an ``Origin`` naming another host, or ``null``, refuses the
    post. A client sending neither (curl) is no browser driven by a foreign page, so it passes. Only the host
    name of the Origin is compared with ``Host``: behind a TLS-terminating proxy the replica sees http while
    the page is https, and nginx's ``$host`` drops the port.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:  # decisive when present: the page's no-referrer policy makes Origin "null" on a POST
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    host = urlsplit("//" + request.headers.get("host", "")).hostname
    return origin == "null" or urlsplit(origin).hostname != host


def build_login_router(keys: KeyStore, *, cookie_max_age_s: int, cookie_secure: bool) -> APIRouter:
    router = APIRouter(tags=["auth"])

    def secure(request: Request) -> bool:
        return cookie_secure or request.url.scheme == "https"

    def page(message: str, target: str, status: int) -> HTMLResponse:
        body = PAGE.replace("{message}", html.escape(message)).replace("{next}", html.escape(target, quote=True))
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(next: str = "/") -> HTMLResponse:
        """The login form (dashboard users land here when they have no valid key cookie)."""
        return page("", safe_next(next), 200)

    @router.post("/login", responses={303: {"description": "Logged in: the cookie is set"},
                                      401: {"description": "Invalid key: the form again"}})
    async def login(request: Request) -> Response:
        """Form fields ``key`` and ``next``: a valid key sets the ``kiwoom_key`` cookie and redirects.
        A post from another site (``Origin``/``Sec-Fetch-Site``) is refused with 403."""
        if cross_site(request):
            return page("Log in from this site's own login page.", "/", 403)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                return page("The form is too large.", "/", 413)
        try:
            form = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=4)
        except ValueError:
            return page("The form has too many fields.", "/", 400)
        key = (form.get("key") or [""])[-1].strip()
        target = safe_next((form.get("next") or ["/"])[-1])
        if not COOKIE_SAFE.fullmatch(key) or keys.lookup(key.encode()) is None:
            return page("That key is not valid.", target, 401)
        response = RedirectResponse(target, status_code=303)
        response.raw_headers.append((b"set-cookie", set_cookie(key, max_age_s=cookie_max_age_s,
                                                               secure=secure(request))))
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.post("/logout", responses={303: {"description": "The cookie is cleared"}})
    async def logout(request: Request) -> Response:
        """Forget the key cookie (not from another site's page: 403)."""
        if cross_site(request):
            return page("Log out from this site's own pages.", "/", 403)
        response = RedirectResponse("/login", status_code=303)
        response.raw_headers.append((b"set-cookie", clear_cookie(secure=secure(request))))
        return response

    return router
