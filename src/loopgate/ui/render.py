"""Templates (jinja2, autoescaped) and the small formatting helpers they use."""

from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import HTMLResponse

from loopgate.ui import views
from loopgate.ui.diff import pretty_json
from loopgate.ui.redact import redact

if TYPE_CHECKING:
    import jinja2


def when(value: str | datetime | None) -> str:
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def excerpt(value: Any, length: int = 90) -> str:
    text = value if isinstance(value, str) else ("" if value is None else orjson.dumps(value).decode())
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


def thousands(value: int | float | None) -> str:
    """A count as people read it: ``1,333,332`` (what the projects list has always shown)."""
    if value is None:
        return ""
    return f"{value:,}" if isinstance(value, int) else f"{value:,.0f}"


def plural(count: int | None, noun: str, nouns: str | None = None) -> str:
    """``1 log``, ``0 logs``, ``3,000 logs``: a count with its noun in the right number."""
    amount = count or 0
    return f"{thousands(amount)} {noun if amount == 1 else (nouns or noun + 's')}"


def seconds(value: float | None) -> str:
    """A latency: milliseconds under a second, then seconds with fewer decimals as they grow
    (``0.84`` -> ``840 ms``, ``1.31`` -> ``1.31 s``, ``12345.678`` -> ``12,346 s``)."""
    if value is None:
        return ""
    if value < 0.001:
        return "<1 ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 10:
        return f"{value:.2f} s"
    if value < 100:
        return f"{value:.1f} s"
    return f"{value:,.0f} s"


def dollars(value: float | None) -> str:
    """Money: cents from a dollar up (``$1,234.50``); below, up to five decimals so a typical call's
    cost still reads (``$0.00055``), never fewer than two (``$0.10``)."""
    if value is None:
        return ""
    if value == 0:
        return "$0.00"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if abs(value) < 0.000005:
        return "<$0.00001"
    decimals = f"{value:.5f}".rstrip("0")
    return "$" + (decimals if len(decimals.split(".")[1]) >= 2 else f"{value:.2f}")


def cost(log: dict[str, Any]) -> str:
    parts = [log.get("prompt_cost"), log.get("output_cost")]
    if all(part is None for part in parts):
        return ""
    return dollars(sum(part or 0 for part in parts))


def shown_json(value: Any) -> str:
    """Pretty JSON with secrets redacted: the only way a payload reaches a page."""
    return pretty_json(redact(value))


def feedback_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def score(value: bool | float | str | list[str] | None) -> str:
    """An evaluator's result or mean: true/false, a number with at most three decimals, or an llm
    evaluator's choice(s) or text as it gave them."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(value)
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def score_class(value: bool | float | str | list[str] | None) -> str:
    """A boolean result reads as good or bad at a glance; a number stays neutral."""
    if isinstance(value, bool):
        return "fb-good" if value else "fb-bad"
    return "fb-other"


@cache
def _environment() -> "jinja2.Environment":
    # Built on the first page, not at import: importing jinja2 (its lexer compiles large regexes) is
    # ~0.15 s that `loopgate serve` would otherwise spend before it can answer the API.
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("loopgate.ui", "templates"),
        autoescape=True,  # every page shows user-supplied text: prompts, outputs, metadata
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        when=when,
        excerpt=excerpt,
        seconds=seconds,
        cost=cost,
        thousands=thousands,
        plural=plural,
        json=shown_json,
        feedback_text=feedback_text,
        score=score,
        score_class=score_class,
        model=lambda config: views.model_of(config)[0],
        provider=lambda config: views.model_of(config)[1],
    )
    return environment


def page(template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _environment().get_template(template).render(**context)
    # Pages hold private data: never cached by shared proxies nor shown from the back/forward cache
    # after signing out.
    headers = {
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
        "Referrer-Policy": "same-origin",
    }
    return HTMLResponse(html, status_code=status_code, headers=headers)
