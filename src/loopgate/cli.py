"""``loopgate serve | keys create | keys list | keys revoke | migrate | prune``. With config.py, the
only place that reads the environment.

The modules behind the commands (pydantic, SQLAlchemy, the store; for ``serve`` uvicorn and the app too)
are imported inside the functions, with the garbage collector paused (``_start_up_imports``).
"""

import argparse
import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from loopgate.config import Settings
    from loopgate.store.keys import ApiKeyStore

T = TypeVar("T")

# LOOPGATE_LOG_LEVEL's names, as uvicorn numbers them ("trace" is uvicorn's own level below debug).
_LOG_LEVELS = {"critical": 50, "error": 40, "warning": 30, "info": 20, "debug": 10, "trace": 5}


@contextlib.contextmanager
def _start_up_imports() -> Iterator[None]:
    """Imports with the garbage collector paused, and everything they created frozen afterwards.

    Start-up creates ~120,000 objects that live as long as the process. At the default thresholds the
    collector walked them ~190 times while they loaded (80-120 ms of CPU) and ``runtime.tune()``'s full
    collection once more (65-110 ms), to free ~800 objects of import-time garbage, which now stay. Frozen
    here, as ``tune()`` freezes the rest of the start-up heap, no collection walks them again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _serve(settings: "Settings", args: argparse.Namespace) -> int:
    workers = args.workers if args.workers is not None else settings.workers
    with _start_up_imports():
        import uvicorn

        # Here, with the collector paused, rather than inside uvicorn; workers are forked with it loaded.
        import loopgate.api.app  # noqa: F401
        from loopgate.store.db import migrate

    migrate(settings.database_url)
    options: dict[str, Any] = {
        "host": args.host or settings.host,
        "port": args.port if args.port is not None else settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "ws": "none",  # no WebSocket routes: saves importing a WebSocket implementation at start-up
        # Nothing reads the client address, and the log browser reads X-Forwarded-Proto itself: the
        # proxy-headers middleware would otherwise run on every request (~2% of a chat's CPU).
        "proxy_headers": False,
        "log_level": settings.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": settings.shutdown_timeout,
    }
    app = "loopgate.api.app:create_app"
    if workers > 1:
        from loopgate import supervisor
        from loopgate.store.db import is_sqlite, sqlite_path

        writer = None
        if is_sqlite(settings.database_url):
            writer = supervisor.WriterOptions(
                sqlite_path(settings.database_url), settings.sqlite_synchronous, settings.writer_max_batch
            )
        from loopgate import metrics

        # With metrics on, where the workers and the writer process share their counts: made before they
        # are forked.
        sharing = contextlib.nullcontext() if settings.metrics_token is None else metrics.shared_directory()
        with sharing:
            return supervisor.serve(uvicorn.Config(app, factory=True, **options), workers, writer)
    uvicorn.run(app, factory=True, **options)
    return 0


async def _create_key(settings: "Settings", organization: str, name: str | None) -> str:
    from loopgate.store.db import create_engine
    from loopgate.store.repository import Store
    from loopgate.store.writers import create_writer

    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    writer = create_writer(
        engine, settings.database_url, max_batch=1, synchronous=settings.sqlite_synchronous
    )
    await writer.start()
    try:
        key, _org_id = await Store(engine, writer).create_api_key(organization=organization, name=name)
    finally:
        await writer.stop()
        await engine.dispose()
    return key


def _keys(settings: "Settings", args: argparse.Namespace) -> int:
    from loopgate.store.db import migrate

    migrate(settings.database_url)
    key = asyncio.run(_create_key(settings, args.org, args.name))
    print(f"Created API key{' ' + repr(args.name) if args.name else ''} for organization {args.org!r}.")
    print("It is shown only this once; loopgate stores only its hash. Send it as the X-API-KEY header.")
    print(key)
    return 0


def _key_store_call(settings: "Settings", call: Callable[["ApiKeyStore"], Awaitable[T]]) -> T:
    from loopgate.store.db import create_engine, migrate
    from loopgate.store.keys import ApiKeyStore

    migrate(settings.database_url)

    async def run() -> T:
        engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
        try:
            return await call(ApiKeyStore(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _list_keys(settings: "Settings", args: argparse.Namespace) -> int:
    keys = _key_store_call(settings, lambda store: store.listing(args.org))
    if not keys:
        print("No API keys" + (f" in organization {args.org!r}." if args.org else "."))
        return 0
    rows = [("ID", "ORGANIZATION", "NAME", "CREATED (UTC)")] + [
        (key.id, key.organization, key.name or "", key.created_at.strftime("%Y-%m-%d %H:%M:%S"))
        for key in keys
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)] + [0]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _revoke_key(settings: "Settings", args: argparse.Namespace) -> int:
    if not _key_store_call(settings, lambda store: store.revoke(args.key_id)):
        print(f"loopgate: no API key with id {args.key_id!r} (see `loopgate keys list`)", file=sys.stderr)
        return 1
    print(f"Revoked API key {args.key_id}. Running servers refuse it within LOOPGATE_AUTH_CACHE_SECONDS.")
    return 0


def _migrate(settings: "Settings", _args: argparse.Namespace) -> int:
    from loopgate.store.db import migrate

    migrate(settings.database_url)
    print("Database is at the newest schema.")
    return 0


async def _prune(settings: "Settings", args: argparse.Namespace) -> str:
    from loopgate.store.db import create_engine
    from loopgate.store.retention import prune

    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        project_id = await _project_id(engine, args.project) if args.project else None
        before = datetime.now(UTC) - args.older_than
        done = await prune(engine, before=before, project_id=project_id, batch_size=args.batch_size)
    finally:
        await engine.dispose()
    scope = f" of project {project_id}" if project_id else ""
    return (
        f"Deleted {done.logs} logs{scope} created before {before.isoformat(timespec='seconds')}, "
        f"{done.feedback} feedback records and {done.blobs} content blobs no log uses any more."
    )


async def _project_id(engine: "AsyncEngine", name_or_id: str) -> str:
    from sqlalchemy import or_, select

    from loopgate.store import tables

    projects = tables.projects
    query = select(projects.c.id).where(or_(projects.c.id == name_or_id, projects.c.name == name_or_id))
    async with engine.connect() as connection:
        found = [str(value) for value in (await connection.execute(query)).scalars()]
    if name_or_id in found:
        return name_or_id
    if len(found) == 1:
        return found[0]
    if not found:
        raise _UsageError(f"no project has the id or name {name_or_id!r}")
    raise _UsageError(f"several organizations have a project named {name_or_id!r}: pass its id instead")


class _UsageError(Exception):
    pass


def _prune_command(settings: "Settings", args: argparse.Namespace) -> int:
    from loopgate.store.db import migrate

    migrate(settings.database_url)
    try:
        print(asyncio.run(_prune(settings, args)))
    except _UsageError as exc:
        print(f"loopgate prune: {exc}", file=sys.stderr)
        return 2
    return 0


def _age(value: str) -> timedelta:
    from loopgate.store.retention import parse_age

    try:
        return parse_age(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive(value: str) -> int:
    number = _whole_number(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _port(value: str) -> int:
    number = _whole_number(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError("must be from 0 to 65535")
    return number


def _whole_number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None


def _parser() -> argparse.ArgumentParser:
    from loopgate.store.repository import DEFAULT_ORGANIZATION

    parser = argparse.ArgumentParser(prog="loopgate", description="Self-hosted Humanloop v4 API server.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server (migrates the database first)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1, or LOOPGATE_HOST)")
    serve.add_argument("--port", type=_port, help="port, 0 for any free one (default 8000, or LOOPGATE_PORT)")
    serve.add_argument("--workers", type=_positive, help="server processes (default 1, or LOOPGATE_WORKERS)")
    serve.set_defaults(handler=_serve)

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create an API key; prints it on the last line")
    create.add_argument("--name", help="a label for the key")
    create.add_argument("--org", default=DEFAULT_ORGANIZATION, help="organization (created if new)")
    create.set_defaults(handler=_keys)
    listing = key_commands.add_parser(
        "list", help="list API keys: id, organization, name, created (never the key)"
    )
    listing.add_argument("--org", help="only this organization's keys")
    listing.set_defaults(handler=_list_keys)
    revoke = key_commands.add_parser("revoke", help="delete an API key by its id (from `keys list`)")
    revoke.add_argument("key_id", help="the key's id, key_...")
    revoke.set_defaults(handler=_revoke_key)

    migrate_command = commands.add_parser("migrate", help="apply database migrations")
    migrate_command.set_defaults(handler=_migrate)

    prune_command = commands.add_parser(
        "prune", help="delete old logs, their feedback and the content only they used, in batches"
    )
    prune_command.add_argument(
        "--older-than", type=_age, required=True, help="age of the logs to delete: 30d, 12h, 2w, ..."
    )
    prune_command.add_argument("--project", help="only this project's logs (its name or id)")
    prune_command.add_argument(
        "--batch-size", type=_positive, default=5000, help="logs deleted per transaction (default 5000)"
    )
    prune_command.set_defaults(handler=_prune_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    with _start_up_imports():
        args = _parser().parse_args(argv)
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        from loopgate.config import Settings

        try:
            settings = Settings()
        except ValueError as exc:  # pydantic's ValidationError, config.InvalidEnvironment (bad JSON)
            print(f"loopgate: invalid configuration: {_config_error(exc)}", file=sys.stderr)
            return 2
        # uvicorn is given the level for its own loggers; loopgate's (worker starts, the OTLP exporter, ...)
        # would otherwise stay at the root's WARNING whatever LOOPGATE_LOG_LEVEL says.
        logging.getLogger("loopgate").setLevel(_LOG_LEVELS[settings.log_level])
    result: int = args.handler(settings, args)
    return result


def _config_error(exc: ValueError) -> str:
    """Which variable is wrong and why, without echoing values (they may hold keys)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        # A map's key that is refused is named once, as the map's entry (pydantic adds a "[key]" part).
        return "; ".join(
            f"LOOPGATE_{str(error['loc'][0]).upper()}"
            + "".join(f"[{part!r}]" for part in error["loc"][1:] if part != "[key]")
            + f": {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
    return f"{exc}: {exc.__cause__}" if exc.__cause__ else str(exc)


if __name__ == "__main__":
    sys.exit(main())
