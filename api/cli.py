"""The ``winnow`` command: ``winnow serve`` starts the service on embedded defaults;
``winnow import | export | invoke`` are the client's dataset commands (winnow_client.cli)."""

from __future__ import annotations

import argparse
import logging
import sys

from winnow_client import cli as client_cli

from service.settings import env_name, parse_value, settable_fields, settings_from_env
from store import SchemaTooNewError, SchemaUpgradeError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="winnow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    for f in settable_fields():
        flag = "--" + f.name.replace("_", "-")
        help_text = f"(env {env_name(f.name)}; default {f.default!s})"
        if f.type == "bool" or f.type is bool:
            serve.add_argument(
                flag,
                dest=f.name,
                default=None,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
        else:
            serve.add_argument(flag, dest=f.name, default=None, metavar="VALUE", help=help_text)
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    client_cli.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return client_cli.run(args)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level != "debug":
        # Alembic says at every start which plugins and DDL mode it uses; store.migrate logs
        # what changed in the schema.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    overrides = {}
    for f in settable_fields():
        raw = getattr(args, f.name)
        if raw is not None:
            overrides[f.name] = raw if isinstance(raw, bool) else parse_value(f, raw)
    try:
        settings = settings_from_env(None, **overrides)
    except ValueError as exc:
        print(f"winnow: {exc}", file=sys.stderr)
        return 2
    try:
        app = create_app(settings)  # creates or upgrades the database schema first
    except (SchemaTooNewError, SchemaUpgradeError) as exc:
        print(f"winnow: {exc}", file=sys.stderr)
        return 1
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
