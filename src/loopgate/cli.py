"""``loopgate serve | keys create | migrate``. With config.py, the only place that reads the environment."""

import argparse
import asyncio
import logging
import sys

from pydantic import ValidationError

from loopgate.config import Settings
from loopgate.store.db import create_engine, migrate
from loopgate.store.repository import DEFAULT_ORGANIZATION, Store
from loopgate.store.writers import create_writer


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    migrate(settings.database_url)
    # Workers are separate processes; each builds its app from the same LOOPGATE_* environment.
    uvicorn.run(
        "loopgate.api.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        access_log=False,
    )
    return 0


async def _create_key(settings: Settings, organization: str, name: str | None) -> str:
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


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    migrate(settings.database_url)
    key = asyncio.run(_create_key(settings, args.org, args.name))
    print(f"Created API key{' ' + repr(args.name) if args.name else ''} for organization {args.org!r}.")
    print("It is shown only this once; loopgate stores only its hash. Send it as the X-API-KEY header.")
    print(key)
    return 0


def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    migrate(settings.database_url)
    print("Database is at the newest schema.")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loopgate", description="Self-hosted Humanloop v4 API server.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server (migrates the database first)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1, or LOOPGATE_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8000, or LOOPGATE_PORT)")
    serve.add_argument("--workers", type=int, help="server processes (default 1, or LOOPGATE_WORKERS)")
    serve.set_defaults(handler=_serve)

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create an API key; prints it on the last line")
    create.add_argument("--name", help="a label for the key")
    create.add_argument("--org", default=DEFAULT_ORGANIZATION, help="organization (created if new)")
    create.set_defaults(handler=_keys)

    migrate_command = commands.add_parser("migrate", help="apply database migrations")
    migrate_command.set_defaults(handler=_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings()
    except ValueError as exc:  # pydantic's ValidationError, pydantic-settings' SettingsError (bad JSON)
        print(f"loopgate: invalid configuration: {_config_error(exc)}", file=sys.stderr)
        return 2
    result: int = args.handler(settings, args)
    return result


def _config_error(exc: ValueError) -> str:
    """Which variable is wrong and why, without echoing values (they may hold keys)."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"LOOPGATE_{str(error['loc'][0]).upper()}"
            + "".join(f"[{part!r}]" for part in error["loc"][1:])
            + f": {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
    return f"{exc}: {exc.__cause__}" if exc.__cause__ else str(exc)


if __name__ == "__main__":
    sys.exit(main())
