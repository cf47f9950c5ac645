"""The log browser's sign-in: an API key is exchanged for a signed, expiring cookie.

The cookie never holds the key. It holds ``<key id>.<expiry>.<signature>``, where the signature is an
HMAC keyed with the stored hash of that API key. Only the server (which holds the hashes) can mint one, so
no extra secret needs configuring; every worker process and restart agrees; and deleting a key ends its
sessions at once. Signing out clears the cookie (a copied cookie stays valid until it expires).

Forms that change something carry a CSRF token (an HMAC of the cookie) and must come from our own origin;
the cookie is also ``SameSite=Strict``, so other sites cannot make the browser send it at all.
"""

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, HTTPException, Request

from loopgate.api.keys import authenticate
from loopgate.errors import AuthenticationError
from loopgate.store.repository import ApiKey

COOKIE = "loopgate_ui"
COOKIE_PATH = "/ui"
LIFETIME_SECONDS = 12 * 3600
SIGN_IN_PATH = "/ui/sign-in"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: the organization whose data every page shows, and the token its forms carry."""

    org_id: str
    key_name: str | None
    csrf_token: str


def _signature(key_hash: str, message: str) -> str:
    digest = hmac.new(key_hash.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _csrf(key_hash: str, cookie: str) -> str:
    return _signature(key_hash, "csrf:" + cookie)[:32]


def mint(key: ApiKey, *, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + LIFETIME_SECONDS)
    message = f"{key.id}.{expires}"
    return f"{message}.{_signature(key.key_hash, message)}"


async def sign_in(request: Request, api_key: str) -> str | None:
    """A cookie value for a valid API key, or None (the same answer for unknown and malformed keys)."""
    try:
        await authenticate(request.app.state.store, api_key)  # the same check /v4 applies
    except AuthenticationError:
        return None
    key = await request.app.state.store.api_key_by_secret(api_key.strip())
    return mint(key) if key is not None else None


async def _viewer_from_cookie(request: Request) -> Viewer | None:
    cookie = request.cookies.get(COOKIE)
    if not cookie or cookie.count(".") != 2:
        return None
    key_id, expires, signature = cookie.split(".")
    if not expires.isdigit() or int(expires) < time.time():
        return None
    key = await request.app.state.store.api_key_by_id(key_id)
    if key is None or not hmac.compare_digest(signature, _signature(key.key_hash, f"{key_id}.{expires}")):
        return None
    return Viewer(org_id=key.org_id, key_name=key.name, csrf_token=_csrf(key.key_hash, cookie))


def _back_to_sign_in(request: Request) -> HTTPException:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"{SIGN_IN_PATH}?next={quote(target, safe='')}"
    return HTTPException(status_code=303, headers={"Location": location})


async def require_viewer(request: Request) -> Viewer:
    """Every page but sign-in depends on this: no valid cookie means a redirect to the sign-in page."""
    viewer = await _viewer_from_cookie(request)
    if viewer is None:
        raise _back_to_sign_in(request)
    request.state.viewer = viewer  # an error page of this request still shows who is signed in
    return viewer


SignedIn = Annotated[Viewer, Depends(require_viewer)]


async def optional_viewer(request: Request) -> Viewer | None:
    """Who is signed in, if anyone, for a page anyone may see (the "Not found" page): its header then
    shows the breadcrumb and "Sign out" as every other page does."""
    viewer = await _viewer_from_cookie(request)
    request.state.viewer = viewer
    return viewer


def same_origin(request: Request) -> bool:
    """Browsers send Origin on every form POST; when it is there it must be this server. (Requests
    without one come from non-browser clients, which cannot hold the SameSite cookie for another site.)"""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def check_form(request: Request, viewer: Viewer, form: dict[str, list[str]]) -> None:
    sent = (form.get("csrf") or [""])[0]
    if not same_origin(request) or not hmac.compare_digest(sent, viewer.csrf_token):
        raise HTTPException(status_code=403, detail="This form is stale or came from another site")


def safe_next(value: str | None) -> str:
    """Only paths inside the browser: never an absolute URL another site could use as a redirect target."""
    if value and value.startswith("/ui") and not value.startswith("//"):
        return value
    return "/ui/projects"
