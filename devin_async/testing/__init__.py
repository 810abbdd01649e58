"""A fake Devin API v3 server for tests: real HTTP on 127.0.0.1, scripted sessions, faults.

``FakeDevinServer`` speaks the sessions subset of the v3 API (org scope
``/v3/organizations/{org_id}/sessions...`` and enterprise scope ``/v3/enterprise/sessions...``)
as JSON over a real socket, so a client under test exercises its whole stack::

    async with FakeDevinServer(api_key="cog_test_key", org_id="org-test") as server:
        server.queue_timeline(WAITS_FOR_USER)
        ...  # point the client at server.url
        assert server.count("create_session") == 1

Every created session walks a scripted timeline of ``Step`` s, one step at most per read
(a GET of the session or its appearance in a list page). Faults (status codes, 429 with
``Retry-After``, slow answers, dropped connections, malformed bodies) are injected with
``inject``. Every request is recorded in ``requests`` exactly as sent, so tests can check the
wire; the server itself never answers with a session secret value (422 error inputs show
``REDACTED``) and stores create bodies with secret values redacted (``FakeSession.body``).

By default the fake behaves like a production server where the docs leave things open, and
``Quirks`` (the server's ``quirks``, filled by constructor keywords of the same names) adds
what real servers are seen to do, so a client's tests can catch real-server bugs: handlers
keep running after the client hangs up (a create the client timed out on still happens),
list answers can lag behind writes (``list_lag_reads``/``list_lag_seconds``), a session's state
can lag behind a message sent to it (``message_lag_reads``), tags can be
restricted to an allowed list (422), list filters can be ignored or read comma-joined, and
429s can come at random (``random_429``) besides the ``rate_limit`` token bucket. Unknown
``devin_mode`` values are refused with 422 and unknown ``platform`` labels with 400.

The package's modules: ``timelines`` (``Step`` and the canned timelines), ``sessions`` (the
recorded requests and session state), ``validation`` (request checks and error bodies),
``queries`` (list filters and pages), ``faults`` (injected faults, the rate limit),
``quirks`` (``Quirks``), ``routes`` (the endpoint handlers), ``pipeline`` (what every request
goes through around them), ``server`` (``FakeDevinServer``) and ``threaded``
(``ThreadedFakeDevin``, the server in its own thread and loop, what the pytest fixtures
use). ``set_instant()`` (or ``with instant():``) makes every delay of the clients created
meanwhile instant. Without any server,
``mock`` has ``MockTransport``, which answers a client's requests from a function.
"""

from __future__ import annotations

from .._settings import InstantTime, instant, set_instant
from .faults import FaultKind
from .mock import MockTransport, mock_response
from .quirks import Quirks
from .server import FakeDevinServer
from .sessions import FakeSession, RecordedRequest
from .threaded import Gate, ThreadedFakeDevin
from .timelines import (
    ERRORS,
    EXITS,
    FINISHES,
    SUSPENDS,
    WAITS_FOR_APPROVAL,
    WAITS_FOR_USER,
    Step,
    StepLike,
    timeline,
)
from .validation import REDACTED

__all__ = [
    "ERRORS",
    "EXITS",
    "FINISHES",
    "REDACTED",
    "SUSPENDS",
    "WAITS_FOR_APPROVAL",
    "WAITS_FOR_USER",
    "FakeDevinServer",
    "FakeSession",
    "FaultKind",
    "Gate",
    "InstantTime",
    "MockTransport",
    "Quirks",
    "RecordedRequest",
    "Step",
    "StepLike",
    "ThreadedFakeDevin",
    "instant",
    "mock_response",
    "set_instant",
    "timeline",
]
