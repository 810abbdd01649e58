"""Chaos soak: many sessions created and awaited through one client under random faults.

``python tests/soak.py --sessions 1000`` (``make soak``) runs the full size and prints the
table of faults injected and survived; ``tests/test_soak.py`` runs the same scenario at a
bounded size in ``make test``.

One ``DevinClient`` creates N sessions (``create_sessions``) and then awaits them all
(``await_sessions``) against a ``FakeDevinServer`` that answers, at seeded random rates on
every route, 5xx (10%), 429 with ``Retry-After`` (5%), dropped connections (2%), answers
slower than the client's request timeout (1%) and malformed bodies (1%). Each share but the
429s' is split between faults answered instead of handling the request (``before``) and
faults answered after handling it (``after``: a create really creates its session first),
which is the ambiguous create the client must find by its tag instead of losing or
repeating it. Like a production server, the fake finishes a request whose client hung up
(a "slow" create the client timed out on still creates its session). Every session
follows a timeline scripted from its prompt, so its final (status, status_detail) is
known in advance. The run then checks that:

- every session settled with its scripted final state;
- the server holds exactly one session per create call, under the id the create returned,
  except for creates the server never acted on and never answered (dropped or answered
  malformed before handling): those end in ``CreateOutcomeUnknownError`` with no session,
  because a create that was sent and not answered is never sent again;
- nothing leaked: no ResourceWarning (unclosed session, connector, transport), nothing
  reported to the loop's exception handler, no task left behind, and no connection left
  open once the client is closed;
- the wall time stayed within a bound derived from the schedule (``time_bound``).

Faults are counted by replaying the fault rules' seeded draws over the server's request
log: the server records every request and draws for it in the same order. The replay is
checked against what the server counted itself (its 5xx and 429 answers; and every
request, the slow ones the client gave up on included, was answered in the end). Drops,
slow answers and malformed bodies are recorded as 200s, so only the replay tells them
from successes.

Malformed bodies answer creates and their tag lookups too (``--no-malformed-creates`` keeps
them to polls): a create answered with an undecodable 2xx is looked up by its tag, like any
other ambiguous create (the regression tests in test_soak.py).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import random
import socket
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import aiohttp
import attrs

from devin_async import CREATE_TAG_PREFIX, CreateOutcomeUnknownError, DevinClient, SessionResult
from devin_async.testing import FakeDevinServer, FakeSession, FaultKind, RecordedRequest, Step

KEY = "cog_soak_key"
ORG = "org-soak"

# The client's documented retry policy and governor (README, "Retries" and "One governor per
# client"). Only max_retries is configurable per client; the time bound budgets for the rest.
BACKOFF_BASE = 0.5  # seconds; full jitter: retry n waits up to min(8, 0.5 * 2 ** (n - 1))
BACKOFF_CAP = 8.0
# A pessimistic model of the governor, for the time bound only: as if every 429 halved the
# rate (at most once a second) and each quiet second raised it by 10%. The governor now
# tolerates 429s that do not follow its rate, so it runs far faster than this model.
RATE_CUT = 2.0
RATE_RECOVERY = 1.1
MIN_RATE = 0.5  # requests/second: the governor slows down but never stalls

KEEPALIVE = 0.2  # seconds an idle pooled connection lives (the leak check waits this out)
CPU_PER_REQUEST = 0.005  # seconds of client and server work per request on a slow machine


# --------------------------------------------------------------------------- configuration


@attrs.frozen
class Rates:
    """Share of requests (0..1) answered with each fault, on every route."""

    server_error: float = 0.10
    rate_limited: float = 0.05
    dropped: float = 0.02
    slow: float = 0.01
    malformed: float = 0.01


@attrs.frozen
class SoakConfig:
    """One soak run. Durations are seconds.

    Attributes:
        sessions: how many sessions to create and await.
        seed: seeds the scripted timelines and the server's fault draws.
        rates: fault shares per request.
        timeout: the client's per-request timeout.
        slow_delay: how long a "slow" answer takes (above ``timeout``).
        poll_interval: the client's first delay between polls.
        max_poll_interval: the client's cap on the delay between polls.
        concurrency: creates in flight at once.
        max_retries: the client's retries per request. A create runs out of attempts when
            every send but the last fails before acting (503, drop, slow: 6.5% of sends
            here, far above any real API) and the last fails at all (13%). With the
            default 3 retries that is 1 create in 28,000 (0.065 ** 3 * 0.13), one
            1,000-session run in 30; with 6, 1 create in 100 million.
        malformed_creates: also answer creates and their tag lookups with malformed
            bodies (off: only polls get them).
        create_grace: how long the client looks an unanswered create up (shorter than
            the client's 10 s default, so that a create the server never acted on does
            not hold the run up).
    """

    sessions: int = 1000
    seed: int = 1
    rates: Rates = Rates()
    timeout: float = 0.5
    slow_delay: float = 1.0
    poll_interval: float = 0.02
    max_poll_interval: float = 0.1
    concurrency: int = 16
    max_retries: int = 6
    malformed_creates: bool = True
    create_grace: float = 3.0


# --------------------------------------------------------------------------- timelines

_ENDS: tuple[tuple[tuple[str, str | None], float], ...] = (
    (("running", "finished"), 0.40),
    (("running", "waiting_for_user"), 0.20),
    (("error", None), 0.15),
    (("suspended", "inactivity"), 0.15),
    (("exit", None), 0.10),
)


def script(config: SoakConfig) -> list[tuple[Step, ...]]:
    """Return one seeded timeline per session: claimed, working, maybe an approval, an end.

    The end is the only settled state of each timeline (``waiting_for_approval`` does not
    settle a wait), so it is the state every wait must return.
    """
    rng = random.Random(f"timelines:{config.seed}")
    ends = [end for end, _ in _ENDS]
    weights = [weight for _, weight in _ENDS]
    timelines = []
    for _ in range(config.sessions):
        ((status, detail),) = rng.choices(ends, weights)
        steps = [Step("claimed", reads=rng.randint(1, 2))]
        steps.append(Step("running", "working", reads=rng.randint(1, 4)))
        if rng.random() < 0.2:
            steps.append(Step("running", "waiting_for_approval", reads=rng.randint(1, 2)))
            steps.append(Step("running", "working", seconds=rng.choice((0.0, 0.2))))
        pr = "https://github.com/example/repo/pull/1" if detail == "finished" else None
        steps.append(Step(status, detail, message="The end.", pull_request=pr))
        timelines.append(tuple(steps))
    return timelines


def prompt(index: int) -> str:
    """Return the prompt of session ``index``; the server scripts its timeline from it."""
    return f"soak task {index}"


def index_of(prompt_text: str) -> int:
    """Return the session index a prompt was made for."""
    return int(prompt_text.rsplit(" ", 1)[1])


def reads_to_settle(steps: Sequence[Step]) -> int:
    """Return how many reads of a session it takes until one shows its last step."""
    return sum(max(1, s.reads) for s in steps[:-1]) + 1


# --------------------------------------------------------------------------- faults


@attrs.frozen
class Rule:
    """One fault rule as injected, with its share of the requests of its method."""

    row: str  # the table row that counts it
    kind: FaultKind
    share: float
    when: Literal["before", "after"] = "before"
    options: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def ambiguous(self) -> bool:
        """True if a create hit by it may or may not have happened, for the client."""
        return self.kind != "rate_limit"


PURPOSES = ("create", "lookup", "poll")
HEADER = ("fault", "target", "creates", "lookups", "polls", "total", "share", "acted", "survived")
ROWS = ("5xx", "429 + Retry-After", "dropped connection", "slow answer", "malformed body")


def rules(config: SoakConfig, *, malformed: bool) -> list[Rule]:
    """Return the fault rules of one HTTP method, in the order the server tries them."""
    r, slow = config.rates, {"delay": config.slow_delay}
    out = [
        Rule("5xx", "status", r.server_error / 2, "before", {"status": 503}),
        Rule("5xx", "status", r.server_error / 2, "after", {"status": 500}),
        Rule("429 + Retry-After", "rate_limit", r.rate_limited / 2, options={"retry_after": "0"}),
        Rule("429 + Retry-After", "rate_limit", r.rate_limited / 2, options={"retry_after": "1"}),
        Rule("dropped connection", "drop", r.dropped / 2, "before"),
        Rule("dropped connection", "drop", r.dropped / 2, "after"),
        Rule("slow answer", "slow", r.slow / 2, "before", slow),
        Rule("slow answer", "slow", r.slow / 2, "after", slow),
    ]
    if malformed:
        out.append(Rule("malformed body", "malformed", r.malformed / 2, "before"))
        out.append(Rule("malformed body", "malformed", r.malformed / 2, "after"))
    return out


def conditional_rates(shares: Sequence[float]) -> list[float]:
    """Turn shares of all requests into the rates the server draws each rule with.

    The server tries the rules in order and the first one whose draw fires wins, so rule
    ``i`` fires with ``share_i / (1 - the shares before it)`` to hit ``share_i`` of all.
    """
    rates, taken = [], 0.0
    for share in shares:
        rates.append(share / (1.0 - taken))
        taken += share
    return rates


@attrs.frozen
class Phase:
    """The fault rules in force from request number ``start`` of the server's log on."""

    start: int
    by_method: Mapping[str, Sequence[Rule]]


def inject(server: FakeDevinServer, phase: Phase) -> None:
    """Replace the server's fault rules with ``phase``'s: unbounded, seeded, in order."""
    server.clear_faults()
    for method, method_rules in phase.by_method.items():
        rates = conditional_rates([rule.share for rule in method_rules])
        for rule, rate in zip(method_rules, rates, strict=True):
            server.inject(
                rule.kind, rate=rate, times=None, method=method, when=rule.when, **rule.options
            )


def replay(
    requests: Sequence[RecordedRequest], phases: Sequence[Phase], seed: int
) -> list[Rule | None]:
    """Return the rule that hit each request, replaying the server's seeded draws.

    The server draws one number per matching rule with a rate, in rule order, until one
    fires; requests draw in the order its log records them.
    """
    rng = random.Random(seed)
    hits: list[Rule | None] = []
    for number, request in enumerate(requests):
        phase = next(p for p in reversed(phases) if p.start <= number)
        method_rules = phase.by_method.get(request.method, ())
        rates = conditional_rates([rule.share for rule in method_rules])
        hit = None
        for rule, rate in zip(method_rules, rates, strict=True):
            if rng.random() < rate:
                hit = rule
                break
        hits.append(hit)
    return hits


# --------------------------------------------------------------------------- the time bound


@attrs.frozen
class Schedule:
    """What the run had to get through: requests made and the faults that cost time."""

    requests: int
    pauses: int  # 429s with "Retry-After: 1"
    slow: int
    poll_faults: int


def time_bound(config: SoakConfig, timelines: Sequence[Sequence[Step]], s: Schedule) -> float:
    """Return the longest the run may take, in seconds, derived from its schedule.

    The budget adds up what the schedule makes the client wait for, each term at its
    worst or at its equilibrium:

    - CPU: ``CPU_PER_REQUEST`` per request.
    - The governor, modelled pessimistically (the governor itself only cuts for 429s
      that follow its rate): as if the client capped its request rate after a 429,
      halved the cap at a 429 (at most once a second) and raised it by 10% per second
      without one. With
      429s on a random share q of requests, a second at rate r is quiet with
      probability exp(-q r); the cap stops drifting where the gains of quiet seconds
      balance the cuts, exp(-q r) ln 1.1 = (1 - exp(-q r)) ln 2, that is at
      q r = ln(1 + ln 1.1 / ln 2) = 0.129: 2.6 requests/second for q = 5%. Every
      request is budgeted at that rate (never below the governor's floor).
    - Pauses: each 429 with ``Retry-After: 1`` pauses every caller for 1 s.
    - Slow answers: each holds its caller for the request timeout.
    - Retries: creates overlap each other's backoff, so the run waits for one create's
      chain at most: ``max_retries`` rounds, retry n backing off up to
      min(8, 0.5 * 2 ** (n - 1)) s, doubled for the lookups and resends of each round,
      which back off on their own when they fail too; and one grace window of lookups
      for a create that was not answered.
    - Awaits: each poll tick reads every pending session once; the slowest timeline
      needs ``reads_to_settle`` reads and its timed steps, each failed poll costs one
      more tick, and ticks are at most ``max_poll_interval`` apart.

    The bound is three times the budget plus 10 s: no loaded 2-core machine trips it,
    while a client that stalls (a lost wake-up, an unbounded backoff, a wait that never
    ends) does.
    """
    r = config.rates
    cpu = s.requests * CPU_PER_REQUEST
    equilibrium = math.log(1.0 + math.log(RATE_RECOVERY) / math.log(RATE_CUT))
    governor = s.requests / max(MIN_RATE, equilibrium / r.rate_limited) if r.rate_limited else 0.0
    pauses = s.pauses * 1.0
    slow = s.slow * config.timeout
    retries = 2 * sum(min(BACKOFF_CAP, BACKOFF_BASE * 2**n) for n in range(config.max_retries))
    retries += config.create_grace
    ticks = max(reads_to_settle(t) for t in timelines) + s.poll_faults
    timed = max(sum(step.seconds for step in t) for t in timelines)
    awaits = ticks * config.max_poll_interval + timed
    budget = cpu + governor + pauses + slow + retries + awaits
    return 3.0 * budget + 10.0


def expected_schedule(config: SoakConfig) -> Schedule:
    """Return a generous a-priori schedule, for the deadline that keeps a stuck run finite."""
    r = config.rates
    requests = 3 * config.sessions + 100
    return Schedule(
        requests=requests,
        pauses=math.ceil(requests * r.rate_limited),
        slow=math.ceil(requests * r.slow * 2),
        poll_faults=100,
    )


# --------------------------------------------------------------------------- the report


@attrs.frozen
class Row:
    """Faults of one kind: where they hit, how many acted first, how many were survived."""

    create: int = 0
    lookup: int = 0
    poll: int = 0
    after: int = 0
    survived: int = 0

    @property
    def total(self) -> int:
        return self.create + self.lookup + self.poll


@attrs.frozen
class Tally:
    """The faults of a run by kind, and how its ambiguous creates recovered."""

    requests: Mapping[str, int]  # by purpose: create, lookup, poll
    faults: Mapping[str, Row]
    ambiguous: int  # create requests hit by a fault after which they may or may not have acted
    acted: int  # of them, faults answered after the session was created
    found: int  # creates the client found by their tag after an ambiguous failure
    resent: int  # create requests sent again after a lookup found nothing


@attrs.frozen
class SoakReport:
    """What a soak run did and what went wrong (``problems`` empty: it passed)."""

    config: SoakConfig
    elapsed: float
    bound: float
    tally: Tally
    outcomes: Mapping[str, int]  # sessions that settled as scripted, by final state
    unknown: int  # creates reported unknown that the server never acted on (no session)
    problems: list[str]

    def table(self) -> str:
        """Render the faults injected and survived, and the verdict, as plain text."""
        c, t = self.config, self.tally
        total = sum(t.requests.values())
        targets = dict(zip(ROWS, attrs.astuple(c.rates), strict=True))
        all_faults = Row(
            *(sum(getattr(row, f) for row in t.faults.values()) for f in attrs.fields_dict(Row))
        )
        table: list[Sequence[object]] = [HEADER]
        for name, row in [
            *((n, t.faults.get(n, Row())) for n in ROWS),
            ("all faults", all_faults),
        ]:
            target = targets.get(name, sum(targets.values()))
            share = f"{row.total / total:.1%}" if total else "-"
            counts = (row.create, row.lookup, row.poll, row.total)
            table.append((name, f"{target:.1%}", *counts, share, row.after, row.survived))
        table.append(("requests", "", *(t.requests.get(p, 0) for p in PURPOSES), total))
        widths = [max(len(str(r[i])) for r in table if i < len(r)) for i in range(len(table[0]))]
        lines = [
            f"Chaos soak: {c.sessions} sessions, seed {c.seed}, request timeout {c.timeout:g} s",
            "",
            *(
                "  ".join(
                    str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
                    for i, (cell, w) in enumerate(zip(r, widths, strict=False))
                ).rstrip()
                for r in table
            ),
            "",
            "acted: answered after the request was handled (a create had made its session)",
            "survived: the sessions the request was about all ended as scripted, once each",
            "  (a create never acted on nor answered: reported unknown, and never created)",
        ]
        if not c.malformed_creates:
            lines.append(
                "malformed bodies hit polls only: a malformed create or tag lookup loses the "
                "create (xfail in test_soak.py)"
            )
        mix = ", ".join(f"{n} {name}" for name, n in sorted(self.outcomes.items()))
        lines += [
            "",
            f"settled as scripted: {sum(self.outcomes.values())}/{c.sessions} ({mix})",
            f"creates never answered nor acted on, reported CreateOutcomeUnknownError and "
            f"never sent again: {self.unknown}",
            f"ambiguous creates: {t.ambiguous} ({t.acted} had acted); "
            f"{t.found} found by their tag, {t.resent} sent again after the lookup",
            f"time: {self.elapsed:.1f} s (bound {self.bound:.1f} s)",
        ]
        if self.problems:
            lines += ["", f"FAILED: {len(self.problems)} problem(s)"]
            lines += [f"- {p}" for p in self.problems[:20]]
        else:
            lines.append("passed: one session per create; no task, connection or warning leaked")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the run


class SocketLog:
    """An aiohttp socket factory that keeps every client socket it makes, to check them."""

    def __init__(self) -> None:
        self.made: list[socket.socket] = []

    def __call__(self, addr_info: aiohttp.AddrInfoType) -> socket.socket:
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family, kind, proto)
        self.made.append(sock)
        return sock

    def open(self) -> list[socket.socket]:
        """Return the sockets not closed yet."""
        return [s for s in self.made if s.fileno() != -1]


def purpose(request: RecordedRequest) -> str:
    """Tell what a request was for: a create, a create's tag lookup, or a poll."""
    if request.method == "POST":
        return "create"
    return "lookup" if any(key == "tags" for key, _ in request.query) else "poll"


def leftover_tasks(before: set[asyncio.Task[Any]], *, server: bool) -> list[str]:
    """Name the tasks started since ``before``; the server's handlers only if ``server``."""
    names = []
    for task in asyncio.all_tasks() - before - {asyncio.current_task()}:
        name = getattr(task.get_coro(), "__qualname__", repr(task))
        if server or not name.startswith("RequestHandler."):
            names.append(name)
    return sorted(names)


async def wait_until(predicate: Callable[[], bool], seconds: float) -> bool:
    """Wait until ``predicate()`` holds, checking every 10 ms for at most ``seconds``."""
    for _ in range(max(1, math.ceil(seconds / 0.01))):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


async def run(config: SoakConfig) -> SoakReport:
    """Run one soak and return its report (problems included; it does not raise them)."""
    loop = asyncio.get_running_loop()
    loop_errors: list[str] = []
    handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: loop_errors.append(str(context.get("message"))))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = await _run(config)
            gc.collect()  # unclosed sessions and transports warn when collected
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(handler)
    report.problems.extend(
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if issubclass(w.category, ResourceWarning)
    )
    report.problems.extend(f"reported to the loop's exception handler: {m}" for m in loop_errors)
    return report


async def _run(config: SoakConfig) -> SoakReport:
    timelines = script(config)
    prompts = [prompt(i) for i in range(config.sessions)]
    problems: list[str] = []
    sockets = SocketLog()
    before = asyncio.all_tasks()
    deadline = time_bound(config, timelines, expected_schedule(config))
    started = time.monotonic()
    async with (
        asyncio.timeout(deadline + 30.0),
        FakeDevinServer(KEY, ORG, seed=config.seed, handler_cancellation=False) as server,
    ):
        server.timeline_factory = lambda body: timelines[index_of(body["prompt"])]
        first = rules(config, malformed=config.malformed_creates)
        phases = [Phase(0, {"POST": first, "GET": first})]
        inject(server, phases[0])
        # A borrowed session whose sockets we see. Once the client is closed, every
        # connection it used must be back in the pool, where keep-alive expiry closes it:
        # a socket still open after that is held by a response nobody released.
        connector = aiohttp.TCPConnector(
            limit=64, keepalive_timeout=KEEPALIVE, socket_factory=sockets
        )
        async with aiohttp.ClientSession(connector=connector) as http:
            client = DevinClient(
                KEY,
                org_id=ORG,
                base_url=server.url,
                session=http,
                timeout=config.timeout,
                max_retries=config.max_retries,
                poll_interval=config.poll_interval,
                max_poll_interval=config.max_poll_interval,
                create_grace=config.create_grace,
            )
            try:
                created = await client.create_sessions(prompts, concurrency=config.concurrency)
                # Malformed bodies join once no create or tag lookup can meet them.
                phases.append(Phase(len(server.requests), {"GET": rules(config, malformed=True)}))
                inject(server, phases[-1])
                ids = [r.session_id for r in created if r.session_id is not None]
                remaining = deadline - (time.monotonic() - started)
                waited = await client.await_sessions(ids, timeout=max(1.0, remaining))
            finally:
                await client.aclose()
            if leftover := leftover_tasks(before, server=False):
                problems.append(f"tasks left after the client closed: {leftover}")
            if http.closed:
                problems.append("the client closed the session it borrowed")
            if not await wait_until(lambda: not sockets.open(), 2 * KEEPALIVE + 1.0):
                problems.append(f"{len(sockets.open())} connection(s) never released")
        server.clear_faults()
        elapsed = time.monotonic() - started
        await server.wait_idle()  # requests the client gave up on are still being answered
        log = list(server.requests)
        statuses = Counter(server.statuses)
        sessions = dict(server.sessions)
        sessions_created = server.sessions_created
    await wait_until(lambda: not leftover_tasks(before, server=True), 1.0)
    if leftover := leftover_tasks(before, server=True):
        problems.append(f"tasks left after the server closed: {leftover}")
    if sockets.open():
        problems.append(f"{len(sockets.open())} client socket(s) still open at the end")

    ok, unknown = _check_sessions(
        config, timelines, created, waited, sessions, sessions_created, problems
    )
    hits = replay(log, phases, config.seed)
    _check_replay(hits, log, statuses, problems)
    tally = _tally(log, hits, sessions, ok)
    schedule = Schedule(
        requests=len(log),
        pauses=sum(1 for h in hits if h is not None and h.options.get("retry_after") == "1"),
        slow=sum(1 for h in hits if h is not None and h.kind == "slow"),
        poll_faults=sum(1 for h, r in zip(hits, log, strict=True) if h and purpose(r) == "poll"),
    )
    bound = time_bound(config, timelines, schedule)
    if elapsed > bound:
        problems.append(f"took {elapsed:.1f} s, more than the bound of {bound:.1f} s")
    settled = [i for i in range(config.sessions) if ok[i] and i not in unknown]
    outcomes = Counter(_outcome(timelines[i][-1]) for i in settled)
    return SoakReport(config, elapsed, bound, tally, outcomes, len(unknown), problems)


def _check_sessions(
    config: SoakConfig,
    timelines: Sequence[Sequence[Step]],
    created: Sequence[SessionResult],
    waited: Sequence[SessionResult],
    sessions: Mapping[str, FakeSession],
    sessions_created: int,
    problems: list[str],
) -> tuple[list[bool], set[int]]:
    """Check one session per create and every scripted end.

    Returns which indexes passed, and the creates that ended ``CreateOutcomeUnknownError``
    with no session on the server (a correct end for a create the server never acted on).
    """
    ok = [True] * config.sessions
    held = Counter(index_of(s.body["prompt"]) for s in sessions.values())
    unknown = {
        i
        for i, r in enumerate(created)
        if isinstance(r.error, CreateOutcomeUnknownError) and held[i] == 0
    }
    if sessions_created != config.sessions - len(unknown):
        problems.append(
            f"{sessions_created} sessions created for {config.sessions} creates "
            f"({len(unknown)} reported unknown with no session)"
        )
    for i in range(config.sessions):
        if held[i] != 1 and i not in unknown:
            ok[i] = False
            problems.append(f"the server holds {held[i]} sessions for {prompt(i)!r}")
    markers = Counter(
        t for s in sessions.values() for t in s.tags if t.startswith(CREATE_TAG_PREFIX)
    )
    if sorted(markers.values()) != [1] * len(sessions):
        problems.append("the sessions do not carry one distinct create tag each")
    waits = iter(waited)
    for i, result in enumerate(created):
        if i in unknown:
            continue
        if result.session_id is None:
            ok[i] = False
            problems.append(f"create {i} failed: {result.error!r}")
            continue
        session = sessions.get(result.session_id)
        if session is None or index_of(session.body["prompt"]) != i:
            ok[i] = False
            problems.append(f"create {i} returned {result.session_id}, not its own session")
        wait = next(waits)
        end = timelines[i][-1]
        if wait.session is None:
            ok[i] = False
            problems.append(f"the wait for session {i} failed: {wait.error!r}")
        elif (wait.session.status, wait.session.status_detail) != (end.status, end.status_detail):
            ok[i] = False
            seen = f"{wait.session.status}/{wait.session.status_detail}"
            problems.append(f"session {i} settled as {seen}, not {end.status}/{end.status_detail}")
    return ok, unknown


def _check_replay(
    hits: Sequence[Rule | None],
    log: Sequence[RecordedRequest],
    statuses: Counter[tuple[str | None, int]],
    problems: list[str],
) -> None:
    """Check the replayed faults against the server's own counts of its answers."""

    def replayed(match: Callable[[Rule], bool]) -> int:
        return sum(1 for h in hits if h is not None and match(h))

    def answered(status: int) -> int:
        return sum(n for (_, code), n in statuses.items() if code == status)

    checks = [
        ("HTTP 500", replayed(lambda h: h.options.get("status") == 500), answered(500)),
        ("HTTP 503", replayed(lambda h: h.options.get("status") == 503), answered(503)),
        ("HTTP 429", replayed(lambda h: h.kind == "rate_limit"), answered(429)),
        ("unanswered", 0, len(log) - sum(statuses.values())),
    ]
    for what, ours, theirs in checks:
        if ours != theirs:
            problems.append(
                f"the fault replay counts {ours} {what}, the server {theirs}: "
                "FakeDevinServer changed how it draws faults; update replay()"
            )


def _tally(
    log: Sequence[RecordedRequest],
    hits: Sequence[Rule | None],
    sessions: Mapping[str, FakeSession],
    ok: Sequence[bool],
) -> Tally:
    """Count the faults by kind and purpose, and how the ambiguous creates recovered."""
    marker_index = {}
    for request in log:
        if request.method == "POST":
            marker_index[_marker(request)] = index_of(request.body["prompt"])
    session_index = {sid: index_of(s.body["prompt"]) for sid, s in sessions.items()}

    def affected(request: RecordedRequest) -> list[int]:
        """The sessions whose fate a request decided (a poll may read many)."""
        kind = purpose(request)
        if kind == "create":
            return [index_of(request.body["prompt"])]
        if kind == "lookup":
            return [marker_index[v] for k, v in request.query if k == "tags" and v in marker_index]
        ids = [v for k, v in request.query if k == "session_ids"]
        ids = ids or [request.path.rsplit("/", 1)[-1]]
        return [session_index[i] for i in ids if i in session_index]

    faults: dict[str, Row] = {}
    events: dict[str, list[str]] = {}  # per create tag: "post" and "lookup", in order
    ambiguous = acted = 0
    for request, hit in zip(log, hits, strict=True):
        kind = purpose(request)
        if kind == "create":
            events.setdefault(_marker(request), []).append("post")
            if hit is not None and hit.ambiguous:
                ambiguous += 1
                acted += hit.when == "after"
        elif kind == "lookup":
            for marker in (v for k, v in request.query if k == "tags"):
                events.setdefault(marker, []).append("lookup")
        if hit is None:
            continue
        row = faults.get(hit.row, Row())
        faults[hit.row] = attrs.evolve(
            row,
            **{kind: getattr(row, kind) + 1},
            after=row.after + (hit.when == "after"),
            survived=row.survived + all(ok[i] for i in affected(request)),
        )
    found = sum(1 for e in events.values() if "lookup" in e and e[-1] == "lookup")
    resent = sum(
        1 for e in events.values() for n, ev in enumerate(e) if ev == "post" and "lookup" in e[:n]
    )
    return Tally(Counter(purpose(r) for r in log), faults, ambiguous, acted, found, resent)


def _outcome(end: Step) -> str:
    """Name a final state: its detail while running (finished, ...), else its status."""
    return str(end.status_detail) if end.status == "running" else end.status


def _marker(request: RecordedRequest) -> str:
    """Return the exactly-once tag of a create request."""
    body = request.body if isinstance(request.body, dict) else {}
    tags = body.get("tags") or []
    return next((t for t in tags if t.startswith(CREATE_TAG_PREFIX)), "")


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak from the command line; exit 1 if it found a problem."""
    parser = argparse.ArgumentParser(description="Chaos soak of devin_async against its fake.")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of timelines and faults")
    parser.add_argument(
        "--rate-limited",
        type=float,
        default=Rates().rate_limited,
        help="share of requests answered 429 (default 0.05)",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=SoakConfig().max_retries,
        help="the client's max_retries (default 6; the client's own default is 3)",
    )
    parser.add_argument(
        "--no-malformed-creates",
        dest="malformed_creates",
        action="store_false",
        help="answer only polls (not creates and tag lookups) with malformed bodies",
    )
    args = parser.parse_args(argv)
    config = SoakConfig(
        sessions=args.sessions,
        seed=args.seed,
        rates=Rates(rate_limited=args.rate_limited),
        max_retries=args.max_retries,
        malformed_creates=args.malformed_creates,
    )
    report = asyncio.run(run(config))
    print(report.table())
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
