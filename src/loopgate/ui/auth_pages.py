"""Sign-in, sign-out, the static files, and the redirects into the browser."""

from importlib import resources

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from loopgate.ui import session
from loopgate.ui.render import page
from loopgate.ui.routing import PageRoute, first, read_form, see_other

router = APIRouter(route_class=PageRoute)

_STATIC = {"style.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}


@router.get("/")
async def root() -> RedirectResponse:
    return see_other("/ui")


@router.get("/ui")
async def home() -> RedirectResponse:
    return see_other("/ui/projects")


@router.get("/ui/static/{name}")
async def static_file(name: str) -> Response:
    if name not in _STATIC:  # a fixed list: no path ever reaches the file system from the URL
        return Response("Not found", status_code=404, media_type="text/plain")
    body = resources.files("loopgate.ui").joinpath("static", name).read_bytes()
    return Response(body, media_type=_STATIC[name], headers={"Cache-Control": "public, max-age=300"})


def _sign_in_page(next_path: str, *, error: str | None = None, status_code: int = 200) -> Response:
    return page(
        "sign_in.html",
        status_code=status_code,
        title="Sign in",
        viewer=None,
        crumbs=[],
        next_path=next_path,
        error=error,
    )


@router.get("/ui/sign-in")
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    return _sign_in_page(session.safe_next(next))


@router.post("/ui/sign-in")
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    next_path = session.safe_next(first(form, "next"))
    if not session.same_origin(request):
        return _sign_in_page(next_path, error="This form came from another site.", status_code=403)
    cookie = await session.sign_in(request, first(form, "api_key"))
    if cookie is None:
        return _sign_in_page(next_path, error="That API key is not valid.", status_code=401)
    response = see_other(next_path)
    response.set_cookie(
        session.COOKIE,
        cookie,
        max_age=session.LIFETIME_SECONDS,
        path=session.COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_over_https(request),
    )
    return response


def _over_https(request: Request) -> bool:
    """HTTPS to this server, or to the TLS-terminating proxy in front of it (``X-Forwarded-Proto``).
    The header is read here rather than by uvicorn's proxy-headers middleware, which would run on every
    request, ``/v4/chat`` included, for this one cookie flag. Trusting it from anyone is safe: a client
    that claims HTTPS over plain HTTP only gets a cookie its own browser will not send back."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


@router.post("/ui/sign-out")
async def sign_out(request: Request, viewer: session.SignedIn) -> Response:
    session.check_form(request, viewer, await read_form(request))
    response = see_other(session.SIGN_IN_PATH)
    response.delete_cookie(session.COOKIE, path=session.COOKIE_PATH, httponly=True, samesite="strict")
    return response
