"""An async bot: start a session, follow it, answer Devin's questions, report the outcome.

The bot saves its place (a small JSON `WaitState`) after every update, so if it is
restarted it resumes following the session without replaying old messages: run it
twice with the same --state file to see that. The session is created with the id of
the chat message that asked for it as its `idempotency_key`, so a bot that crashes
between the create and saving its state gets the same session when it starts again,
not a second one. Runs against the embedded fake server; ``--real`` uses the real API
(one real session).

    python examples/bot.py [--real] [--state bot-state.json] [--request-id slack-msg-1724]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from pathlib import Path

import anyio
from _backend import add_real_option, open_client

from devin_async import (
    DevinClient,
    MessageSource,
    StatusDetail,
    WaitState,
    dumps_wait_state,
    loads_wait_state,
)
from devin_async.testing import FakeDevinServer, Step


def answer(question: str) -> str:
    """What a real bot would ask a human for (in Slack, say); here, a canned reply."""
    return "Use the main branch, and open a draft PR." if "branch" in question else "Yes."


async def run(client: DevinClient, path: Path, request_id: str) -> None:
    state_file = anyio.Path(path)
    if await state_file.exists():
        state = loads_wait_state(await state_file.read_text())
        print(f"resuming {state.session_id} from {state_file}")
    else:
        session = await client.create_session(
            "Bump the Python version in CI", tags=["bot"], idempotency_key=request_id
        )
        state = WaitState(session.session_id)
        print(f"started {session.session_id}")

    last_question = ""
    while True:
        async for update in client.follow_session(state, timeout=3600):
            if update.message is not None:
                who = "Devin" if update.message.source == MessageSource.DEVIN else "user"
                print(f"  {who}: {update.message.message}")
                if update.message.source == MessageSource.DEVIN:
                    last_question = update.message.message
            if update.session is not None:
                print(f"  now {update.session.status}/{update.session.status_detail}")
            state = update.state
            await state_file.write_text(dumps_wait_state(state))  # handled: resume from here

        if state.status_detail != StatusDetail.WAITING_FOR_USER:
            break
        reply = answer(last_question)
        print(f"  bot: {reply}")
        after = await client.send_message(state.session_id, reply)
        # The state lags after a message: until the session shows it moved on, the next
        # follow must not end on the "waiting" this reply answered, nor take the old
        # question for a new one, even after a restart. Save that with the state.
        state = state.after_reply(after)
        await state_file.write_text(dumps_wait_state(state))

    final = await client.get_session(state.session_id)
    print(f"outcome: {final.status}/{final.status_detail}")
    for pr in final.pull_requests:
        print(f"pull request: {pr.pr_url}")


def _script(server: FakeDevinServer) -> None:
    server.queue_timeline(
        [
            Step("claimed"),
            Step("running", "working", reads=2),
            Step("running", "waiting_for_user", message="Which branch should I use?"),
            Step("running", "working", reads=2),
            Step("running", "finished", pull_request="https://github.com/acme/app/pull/7"),
        ]
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state", type=Path, help="where to keep the bot's place")
    parser.add_argument(
        "--request-id",
        default="chat-message-1",
        help="id of the chat message that asked for the work (the idempotency key)",
    )
    add_real_option(parser)
    args = parser.parse_args()
    state_file = args.state or Path(tempfile.mkdtemp()) / "bot-state.json"

    async with contextlib.AsyncExitStack() as stack:
        client = await open_client(
            stack,
            real=args.real,
            starts="one session",
            fake=lambda: FakeDevinServer(message_lag_reads=2),
            setup=_script,
        )
        await run(client, state_file, args.request_id)


if __name__ == "__main__":
    asyncio.run(main())
