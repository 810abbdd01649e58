"""The argument parser of ``devin-async``, built from the command modules."""

from __future__ import annotations

import argparse

from .._version import __version__
from . import calls, commands, fake
from .errors import EXIT_CODES
from .options import Handler, add_global_options

# Each module's ``register(add)`` declares its commands, in this order in ``--help``.
COMMAND_MODULES = (commands, calls, fake)

EPILOG = (
    "environment: DEVIN_API_KEY (required; never a command-line option), DEVIN_ORG_ID,\n"
    "DEVIN_BASE_URL\n\nexit codes:\n"
    + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)
)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``devin-async``."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="devin-async",
        description="Start, inspect, wait for and steer Devin sessions (REST API v3).",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_global_options(parser, defaults=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, summary: str, handler: Handler, *, needs_client: bool = True
    ) -> argparse.ArgumentParser:
        sub = subparsers.add_parser(
            name, help=summary, description=summary, epilog=EPILOG, formatter_class=formatter
        )
        add_global_options(sub, defaults=False)
        sub.set_defaults(handler=handler, needs_client=needs_client)
        return sub

    for module in COMMAND_MODULES:
        module.register(add)
    return parser
