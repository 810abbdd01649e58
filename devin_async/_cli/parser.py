"""The argument parser of ``devin-async``, built from the command modules."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from .._version import __version__
from . import calls, commands, fake
from .errors import EXIT_CODES, EXIT_USAGE
from .options import GLOBAL_OPTIONS, Handler, add_global_options
from .render import dumps

# Each module's ``register(add)`` declares its commands, in this order in ``--help``.
COMMAND_MODULES = (commands, calls, fake)

EPILOG = (
    "environment: DEVIN_API_KEY (required; never a command-line option), DEVIN_ORG_ID,\n"
    "DEVIN_BASE_URL\n\nexit codes:\n"
    + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)
)


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one JSON object on stderr under ``--json``."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        """Print the usage error (JSON if asked for) and exit 2, like argparse."""
        if self.json_errors:
            document = {"error": "usage", "message": message, "exit_code": EXIT_USAGE}
            self.exit(EXIT_USAGE, dumps(document) + "\n")
        super().error(message)


def wants_json(argv: Sequence[str]) -> bool:
    """Whether ``--json`` is among the options of ``argv`` (before any ``--``)."""
    options = list(argv)
    return "--json" in (options[: options.index("--")] if "--" in options else options)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``, refusing a global option that does not apply to its command.

    Raises:
        SystemExit: a usage error (status 2), or ``--help`` or ``--version`` (status 0).
    """
    parser = build_parser(json_errors=wants_json(argv))
    args = parser.parse_args(argv)
    for name in sorted(GLOBAL_OPTIONS - args.applies):
        if getattr(args, name) not in (None, False):
            parser.error(f"--{name.replace('_', '-')} does not apply to {args.command}")
    return args


def build_parser(*, json_errors: bool = False) -> argparse.ArgumentParser:
    """Return the argument parser of ``devin-async``; ``json_errors``: usage errors as JSON."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = Parser(
        prog="devin-async",
        description="Start, inspect, wait for and steer Devin sessions (REST API v3).",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    parser.json_errors = json_errors
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_global_options(parser, defaults=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str,
        summary: str,
        handler: Handler,
        *,
        needs_client: bool = True,
        options: frozenset[str] = GLOBAL_OPTIONS,
    ) -> argparse.ArgumentParser:
        sub = subparsers.add_parser(
            name, help=summary, description=summary, epilog=EPILOG, formatter_class=formatter
        )
        assert isinstance(sub, Parser)  # argparse makes subparsers of the parser's class
        sub.json_errors = json_errors
        add_global_options(sub, defaults=False, shown=options)
        sub.set_defaults(handler=handler, needs_client=needs_client, applies=options)
        return sub

    for module in COMMAND_MODULES:
        module.register(add)
    return parser
