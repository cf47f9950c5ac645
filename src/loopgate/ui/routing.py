"""What every browser route shares: HTML error pages, form bodies, links that keep the current query."""

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import RedirectResponse, Response

from loopgate.api.responses import storage_unavailable
from loopgate.errors import ConflictError, NotFoundError, RequestInvalid
from loopgate.ui.render import page

_MAX_FORM_BYTES = 64 * 1024
_TITLES = {
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "Conflict",
    413: "Too large",
    422: "Not accepted",
    500: "Server error",
    503: "Unavailable",
}


def _error_page(request: Request, status_code: int, message: str) -> Response:
    viewer = getattr(request.state, "viewer", None)
    return page(
        "error.html",
        status_code=status_code,
        title=_TITLES.get(status_code, "Error"),
        message=message,
        viewer=viewer,
        crumbs=[("Projects", "/ui/projects")] if viewer else [],
    )


class PageRoute(APIRoute):
    """Errors of a browser route answer with a page (the /v4 handlers answer with JSON). Another
    organization's ids read as 404, exactly as in the API."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await handle(request)
            except (NotFoundError, ConflictError, RequestInvalid) as exc:
                return _error_page(request, exc.status_code, exc.message)
            except RequestValidationError:
                return _error_page(request, 422, "Some of the values in the address are not valid.")
            except HTTPException as exc:
                if exc.status_code < 400:
                    raise  # the redirect to sign-in
                return _error_page(request, exc.status_code, str(exc.detail))
            except Exception as exc:
                # A bug (logged with its traceback) or a database that cannot answer: a page that says so,
                # not Starlette's bare text and a dropped connection.
                failure = storage_unavailable(exc, f"{request.method} {request.url.path}")
                if failure is not None:
                    return _error_page(request, failure.status_code, failure.message)
                return _error_page(request, 500, "Something went wrong on the server; its log says what.")

        return handler


async def read_form(request: Request) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body (browsers send nothing else for these forms)."""
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise HTTPException(status_code=413, detail="The form is too large")
    return parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def first(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0].strip()


def see_other(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


def with_query(request: Request, **changes: str | int | None) -> str:
    """The current page's address with some query parameters changed (None removes one)."""
    params = {key: value for key, value in request.query_params.items() if value}
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    return request.url.path + ("?" + urlencode(params) if params else "")


def page_links(
    request: Request, page_number: int, *, has_next: bool, size: int, total: int | None = None
) -> dict[str, Any]:
    """What a paged list's template needs: its pager's links, and, for a page past the end, links to the
    first page and (when the total is known) the last one."""
    last_number = max(1, -(-total // size)) if total is not None else None
    return {
        "page_number": page_number,
        "has_next": has_next,
        "previous_url": with_query(request, page=page_number - 1 if page_number > 2 else None),
        "next_url": with_query(request, page=page_number + 1),
        "first_url": with_query(request, page=None),
        "last_url": with_query(request, page=last_number if last_number and last_number > 1 else None),
        "last_number": last_number,
    }
