"""Start a Devin session and follow it to the end from plain blocking code.

``SyncDevinClient`` runs the async client in a thread of its own: no ``async``, no
``await``, the same methods, arguments and exceptions. Runs against the embedded fake
server; ``--real`` uses the real API (DEVIN_API_KEY, DEVIN_ORG_ID) and starts one real
session.

    python examples/sync_script.py [--real]
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from _backend import add_real_option, open_sync_client

from devin_async import DevinError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_real_option(parser)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        devin = open_sync_client(stack, real=args.real, starts="one session")
        try:
            state = session = devin.create_session(
                "Add a --version flag to the CLI and open a PR", tags=["example"]
            )
            print(f"started {session.session_id}: {session.url}")
            for state in devin.watch_session(session.session_id, timeout=1800):
                print(f"  now {state.status}/{state.status_detail}")
        except DevinError as exc:  # AwaitTimeoutError included
            print(f"could not follow the session: {exc}", file=sys.stderr)
            return 1
        print(f"settled as {state.status}/{state.status_detail}")
        for pr in state.pull_requests:
            print(f"pull request: {pr.pr_url} ({pr.pr_state})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
