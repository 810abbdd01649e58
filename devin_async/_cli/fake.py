"""``fake-server`` and ``demo``: the commands that import the testing kit, lazily."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._filters import LIST_FILTERS
from .errors import EXIT_ERROR, EXIT_OK, CliError
from .options import AddCommand, number, port, positive_int
from .render import dumps, say

if TYPE_CHECKING:
    from ..testing import Step

FAKE_API_KEY = "cog_fake_server_key"  # printed on purpose: it only opens the local fake
FAKE_ORG_ID = "org-fake"
FAKE_PORT = 8765  # the default of fake-server: a stable DEVIN_BASE_URL to export once


def register(add: AddCommand) -> None:
    """Declare ``fake-server`` and ``demo`` and their options."""
    summary = "run a local fake Devin API for development"
    fake = add(
        "fake-server",
        summary,
        _fake_server,
        needs_client=False,
        options=frozenset({"json", "org_id"}),
    )
    fake.add_argument(
        "--port",
        type=port,
        default=FAKE_PORT,
        help=f"TCP port (default {FAKE_PORT}; 0: any free one)",
    )
    fake.add_argument(
        "--host", choices=["127.0.0.1"], default="127.0.0.1", help="only 127.0.0.1 is served"
    )
    behave = fake.add_argument_group("real-server behaviours (default: none)")
    behave.add_argument(
        "--rate-limit",
        type=number(float, "a positive number of requests per second", lambda v: 0 < v < math.inf),
        metavar="N",
        help="answer 429 beyond N requests per second (a token bucket)",
    )
    behave.add_argument(
        "--random-429",
        type=number(float, "a probability between 0 and 1", lambda v: 0 <= v <= 1),
        metavar="P",
        help="answer any request 429 with probability P",
    )
    behave.add_argument(
        "--allowed-tag",
        action="append",
        metavar="T",
        help="allow only tag T (repeatable); other tags are refused with 422",
    )
    behave.add_argument(
        "--ignore-filter",
        action="append",
        choices=sorted(LIST_FILTERS),
        metavar="NAME",
        help="ignore the list filter NAME, e.g. tags (repeatable)",
    )
    behave.add_argument(
        "--array-encoding",
        choices=["repeat", "comma"],
        help="read array filters as repeated keys (tags=a&tags=b) or comma-joined (tags=a,b)",
    )
    behave.add_argument(
        "--list-lag-reads",
        type=number(int, "a non-negative integer", lambda v: v >= 0),
        metavar="N",
        help="leave a new session out of the first N lists it matches",
    )
    behave.add_argument(
        "--list-lag-seconds",
        type=number(float, "a non-negative number of seconds", lambda v: 0 <= v < math.inf),
        metavar="S",
        help="leave a new session out of lists for S seconds",
    )
    behave.add_argument(
        "--message-lag-reads",
        type=number(int, "a non-negative integer", lambda v: v >= 0),
        metavar="N",
        help="show a session's state from before a message for N reads after it",
    )
    behave.add_argument(
        "--cancel-handlers",
        action="store_true",
        help="cancel a request's handling when its client hangs up (default: finish it)",
    )

    demo = add(
        "demo", "fan out sessions against a fake API, with live progress", _demo, needs_client=False
    )
    demo.add_argument("--count", type=positive_int, help="sessions (default 20; 1 real)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the fake timelines")
    demo.add_argument("--real", action="store_true", help="use the real API (costs ACUs)")


def fake_env(url: str, api_key: str, org_id: str) -> dict[str, str]:
    """Return the environment that points the client (and this command) at a fake server."""
    return {"DEVIN_BASE_URL": url, "DEVIN_API_KEY": api_key, "DEVIN_ORG_ID": org_id}


def render_banner(env: Mapping[str, str]) -> list[str]:
    """Return the first stdout lines of ``fake-server``: its URL, then what to export."""
    exports = " ".join(f"{name}={value}" for name, value in env.items())
    return [env["DEVIN_BASE_URL"], f"export {exports}"]


def fake_timeline(number: int) -> list[Step]:
    """Return the scripted timeline of the ``fake-server`` 's session ``number``.

    It finishes 5 s after the create on wall time (``reads=0``), polled or not.
    """
    from ..testing import Step

    return [
        Step("claimed", reads=0, seconds=1.0),
        Step("running", "working", reads=0, seconds=2.0, message="Looking at the repository."),
        Step("running", "working", reads=0, seconds=2.0, message="Running the tests."),
        Step(
            "running",
            "finished",
            message="Done: I opened a pull request.",
            pull_request=f"https://github.com/example/app/pull/{number}",
            structured_output={"summary": "done"},
        ),
    ]


def fake_server_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the ``FakeDevinServer`` keywords of the ``fake-server`` flags that were given."""
    given = {
        "rate_limit": args.rate_limit,
        "random_429": args.random_429,
        "allowed_tags": args.allowed_tag,
        "ignored_filters": args.ignore_filter,
        "array_encoding": args.array_encoding,
        "list_lag_reads": args.list_lag_reads,
        "list_lag_seconds": args.list_lag_seconds,
        "message_lag_reads": args.message_lag_reads,
        "handler_cancellation": args.cancel_handlers or None,
    }
    return {name: value for name, value in given.items() if value is not None}


async def serve_fake(
    *,
    port: int = 0,
    org_id: str = FAKE_ORG_ID,
    as_json: bool = False,
    stop: asyncio.Event,
    options: Mapping[str, Any] | None = None,
) -> int:
    """Run ``FakeDevinServer`` on 127.0.0.1 until ``stop`` is set; print how to use it first.

    ``options`` are more ``FakeDevinServer`` keywords, e.g. ``{"random_429": 0.1}``.
    """
    from ..testing import FakeDevinServer

    counter = iter(range(1, sys.maxsize))
    options = dict(options or {})
    server = FakeDevinServer(api_key=FAKE_API_KEY, org_id=org_id, port=port, **options)
    server.timeline_factory = lambda body: fake_timeline(next(counter))
    try:
        await server.start()
    except OSError as exc:
        raise CliError(
            f"cannot listen on 127.0.0.1:{port}: {exc.strerror} (--port 0 takes any free port)",
            EXIT_ERROR,
        ) from None
    try:
        env = fake_env(server.url, server.api_key, server.org_id)
        say(dumps({"url": server.url, "env": env}) if as_json else "\n".join(render_banner(env)))
        print(
            "fake Devin API: sessions finish in about 5 s; stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        if options:
            shown = ", ".join(f"{name}={value!r}" for name, value in options.items())
            print(f"real-server behaviours: {shown}", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        served = (
            f"served {len(server.requests)} requests; sessions created: {server.sessions_created}"
        )
        await server.close()
        print(served, file=sys.stderr, flush=True)
    return EXIT_OK


async def _fake_server(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C is its documented stop: exit 0
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(signum, stop.set)
    return await serve_fake(
        port=args.port,
        org_id=args.org_id or FAKE_ORG_ID,
        as_json=args.json,
        stop=stop,
        options=fake_server_options(args),
    )


async def _demo(args: argparse.Namespace) -> int:
    if not args.real and (args.org_id or args.base_url):
        raise CliError("--org-id and --base-url apply to demo only with --real")
    from .. import _demo

    return await _demo.run(
        args.count if args.count is not None else (1 if args.real else 20),
        real=args.real,
        seed=args.seed,
        json_lines=args.json,
        org_id=args.org_id,
        base_url=args.base_url,
    )
