"""Contract test: the real client against Prism, loaded with the project's OpenAPI spec.

Prism (npm ``@stoplight/prism-cli``, installed into ``.prism/`` by ``.ci/prism.sh``)
validates every request against ``spec/devin-v3-sessions.openapi.yaml``: a
request that breaks the spec gets a 4xx with the reasons in an ``sl-violations`` header.
Every request the client can send is made here, in the organization and the enterprise
scope where the spec has both, and each must come back 2xx with no violation. Prism does
not refuse query parameters or JSON body members that the spec does not declare (nor
does a FastAPI server: a misspelt filter or field is silently ignored), so every query
name and body member sent is also checked against the spec's declarations here.

The second half asks Prism for *dynamic* responses (``Prefer: dynamic=true``: a random,
schema-valid body per request) a few hundred times and decodes every one. They differ
on every run by design; a failure names the field and quotes the start of the body.

Skipped, with the reason in the summary (``-rs``), when the spec, Prism or node is
missing.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from yarl import URL

from devin_async import (
    Attachment,
    CreateSessionRequest,
    DevinClient,
    InsightsGeneration,
    Message,
    Page,
    Session,
    SessionInsights,
    SessionSecret,
    SessionUpdate,
    UploadedAttachment,
    WaitState,
)

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec" / "devin-v3-sessions.openapi.yaml"
PRISM_HOME = ROOT / ".prism"
PRISM = PRISM_HOME / "node_modules" / ".bin" / "prism"
STARTUP_SECONDS = 30.0

KEY = "cog_contract_test_key"
ORG = "org-contract"
SESSION = "devin-0123456789abcdef"
SCOPES = ["org", "enterprise"]


# ------------------------------------------------------------------ Prism


def _skip_reason() -> str | None:
    if not SPEC.is_file():
        return f"OpenAPI spec not found at spec/{SPEC.name}"
    if not PRISM.exists():
        return "Prism is not installed in .prism/: run .ci/prism.sh (needs npm)"
    if shutil.which("node") is None:
        return "node is not on PATH: Prism cannot run"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/")
        connection.getresponse().read()
    except OSError:
        return False
    finally:
        connection.close()
    return True


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``prism mock`` on a free loopback port; yield its base URL; stop it."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    log_path = tmp_path_factory.mktemp("prism") / "prism.log"
    with log_path.open("wb") as log:
        # Its own process group, so that teardown ends node and anything it started.
        process = subprocess.Popen(
            [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), str(SPEC)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"Prism did not start within {STARTUP_SECONDS}s:\n{tail}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


# ------------------------------------------------------------------ what the spec declares


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    query: frozenset[str]  # query parameter names as they appear on the wire
    body: dict[str, Any] | None  # the JSON request body schema


@dataclass(frozen=True)
class Contract:
    spec: dict[str, Any]
    operations: list[Operation]

    def operation(self, method: str, path: str) -> Operation:
        found = [o for o in self.operations if o.method == method and o.pattern.fullmatch(path)]
        assert len(found) == 1, f"{method} {path} matches {[o.template for o in found]}"
        return found[0]

    def undeclared(self, schema: dict[str, Any], value: object, where: str) -> list[str]:
        """Return the members of ``value`` (at ``where``) that ``schema`` does not declare."""
        schema = _resolve(self.spec, schema)
        kind = "object" if isinstance(value, dict) else "array" if isinstance(value, list) else None
        if kind is None:
            return []
        for branch in schema.get("anyOf", []):
            if _resolve(self.spec, branch).get("type") == kind:
                return self.undeclared(branch, value, where)
        found: list[str] = []
        if isinstance(value, dict) and "properties" in schema:
            for name, member in value.items():
                if name in schema["properties"]:
                    found += self.undeclared(schema["properties"][name], member, f"{where}.{name}")
                elif schema.get("additionalProperties") is not True:
                    found.append(f"{where}.{name}")
        elif isinstance(value, list) and "items" in schema:
            for index, item in enumerate(value):
                found += self.undeclared(schema["items"], item, f"{where}[{index}]")
        return found


def _load_spec() -> dict[str, Any]:
    # The YAML is read with the js-yaml that Prism itself installs: the Python side has
    # no YAML parser among its dependencies, and node is there whenever Prism is.
    script = (
        "const yaml = require('js-yaml'); const fs = require('fs');"
        "process.stdout.write(JSON.stringify(yaml.load(fs.readFileSync(process.argv[1], 'utf8'))))"
    )
    result = subprocess.run(
        ["node", "-e", script, str(SPEC)],  # noqa: S607 - node from PATH, as Prism uses it
        cwd=PRISM_HOME,
        capture_output=True,
        timeout=30,
        check=True,
    )
    spec: dict[str, Any] = json.loads(result.stdout)
    return spec


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        for part in node["$ref"].removeprefix("#/").split("/"):
            spec = spec[part]
        node = spec
    return node


def _query_names(spec: dict[str, Any], parameters: list[dict[str, Any]]) -> frozenset[str]:
    names: set[str] = set()
    for param in (_resolve(spec, p) for p in parameters):
        if param["in"] != "query":
            continue
        schema = _resolve(spec, param.get("schema", {}))
        # An object parameter in form style with explode (the OpenAPI default) is sent
        # as its properties: the spec's `qs` never appears on the wire.
        exploded = param.get("style", "form") == "form" and param.get("explode", True)
        if schema.get("type") == "object" and exploded:
            names.update(schema.get("properties", {}))
        else:
            names.add(param["name"])
    return frozenset(names)


@pytest.fixture(scope="module")
def contract(prism: str) -> Contract:
    spec = _load_spec()
    found = []
    for template, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method == "parameters":
                continue
            regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            query = _query_names(spec, [*shared, *op.get("parameters", [])])
            content = op.get("requestBody", {}).get("content", {})
            body = content.get("application/json", {}).get("schema")
            found.append(Operation(method.upper(), template, re.compile(regex), query, body))
    return Contract(spec, found)


# ------------------------------------------------------------------ recording exchanges


@dataclass(frozen=True)
class Exchange:
    method: str
    url: URL
    body: bytes
    status: int
    violations: str | None


@pytest.fixture
def exchanges() -> list[Exchange]:
    return []


async def _http_session(
    exchanges: list[Exchange], headers: dict[str, str] | None = None
) -> aiohttp.ClientSession:
    async def on_chunk_sent(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestChunkSentParams,
    ) -> None:
        context.body = getattr(context, "body", b"") + params.chunk

    async def on_request_end(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        response = params.response
        violations = response.headers.get("sl-violations")
        body = getattr(context, "body", b"")
        exchanges.append(Exchange(params.method, params.url, body, response.status, violations))

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(on_chunk_sent)
    trace.on_request_end.append(on_request_end)
    return aiohttp.ClientSession(trace_configs=[trace], headers=headers)


@pytest.fixture
async def clients(
    prism: str, exchanges: list[Exchange]
) -> AsyncIterator[Callable[..., DevinClient]]:
    """Make clients of either scope that send through one recorded, borrowed session."""
    http = await _http_session(exchanges)
    made: list[DevinClient] = []

    def make(scope: str, **options: Any) -> DevinClient:
        org_id = ORG if scope == "org" else None
        options.setdefault("max_retries", 0)  # a refusal must show, not be retried
        client = DevinClient(KEY, org_id=org_id, base_url=prism, session=http, **options)
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.aclose()
        await http.close()


def assert_accepted(exchanges: list[Exchange], contract: Contract, count: int) -> None:
    """Every request was accepted, and sent only query names and members the spec declares."""
    assert len(exchanges) == count, [f"{e.method} {e.url}" for e in exchanges]
    for exchange in exchanges:
        sent = f"{exchange.method} {exchange.url.path_qs}"
        assert 200 <= exchange.status < 300, f"{sent} -> {exchange.status}: {exchange.violations}"
        assert exchange.violations is None, f"{sent}: {exchange.violations}"
        operation = contract.operation(exchange.method, exchange.url.path)
        undeclared = sorted(set(exchange.url.query) - operation.query)
        if operation.body is None:
            assert not exchange.body, f"{sent} sent a body the spec does not declare"
        else:
            assert exchange.body, f"{sent} sent no body"
            body = json.loads(exchange.body)
            undeclared += contract.undeclared(operation.body, body, "body")
        assert not undeclared, f"{sent}: {undeclared} not declared by the spec"


# ------------------------------------------------------------------ every request


FULL_CREATE = CreateSessionRequest(
    prompt="Fix the flaky test",
    title="Flaky test",
    tags=("ci", "backend"),
    devin_mode="fast",
    advanced_mode="analyze",
    attachment_urls=("https://example.com/a.txt",),
    bypass_approval=True,
    child_playbook_id="playbook-child",
    create_as_user_id="user-1",
    knowledge_ids=("knowledge-1",),
    max_acu_limit=10,
    platform="windows",
    playbook_id="playbook-1",
    repos=("owner/repo",),
    resumable=False,
    secret_ids=("secret-1",),
    session_links=("https://app.devin.ai/sessions/abc",),
    session_secrets=(SessionSecret("TOKEN", "value", sensitive=True),),
    structured_output_required=False,
    structured_output_schema={"type": "object", "properties": {"ok": {"type": "boolean"}}},
)


@pytest.mark.parametrize(
    ("request_", "exactly_once"),
    [
        ("Fix the flaky test", False),
        ("Fix the flaky test", True),  # adds the devin-async-create:<hex> tag
        (FULL_CREATE, False),
        (FULL_CREATE, True),
    ],
    ids=["minimal", "minimal-tagged", "every-field", "every-field-tagged"],
)
async def test_create_is_accepted(
    clients: Callable[..., DevinClient],
    exchanges: list[Exchange],
    contract: Contract,
    request_: str | CreateSessionRequest,
    exactly_once: bool,
) -> None:
    client = clients("org", exactly_once_create=exactly_once)
    deprecated = isinstance(request_, CreateSessionRequest) and request_.advanced_mode is not None
    with pytest.warns(DeprecationWarning, match="advanced_mode") if deprecated else nullcontext():
        assert isinstance(await client.create_session(request_), Session)
    assert_accepted(exchanges, contract, 1)


@pytest.mark.parametrize("scope", SCOPES)
async def test_get_session_is_accepted(
    clients: Callable[..., DevinClient],
    exchanges: list[Exchange],
    contract: Contract,
    scope: str,
) -> None:
    client = clients(scope)
    assert isinstance(await client.get_session(SESSION), Session)
    assert isinstance(await client.get_session("abc123"), Session)  # prefix added
    assert_accepted(exchanges, contract, 2)


# Every filter the client has, arrays with two values (sent as repeated keys).
COMMON_FILTERS: dict[str, Any] = {
    "session_ids": [SESSION, "devin-fedcba9876543210"],
    "tags": ["ci", "backend"],
    "origins": ["api", "slack"],
    "user_ids": ["user-1", "user-2"],
    "service_user_ids": ["service-user-1", "service-user-2"],
    "playbook_id": "playbook-1",
    "schedule_id": "schedule-1",
    "created_after": 1_700_000_000,
    "created_before": 1_800_000_000,
    "updated_after": 1_700_000_000,
    "updated_before": 1_800_000_000,
    "repo_names": ["owner/repo", "owner/other"],
    "category": "bug_fixing",
    "is_archived": False,
}
ORG_FILTERS = COMMON_FILTERS
ENTERPRISE_FILTERS = {**COMMON_FILTERS, "org_ids": [ORG, "org-other"]}


async def one_page(pages: AsyncIterator[Page[Any]]) -> Page[Any]:
    """Return the first page and close the rest of the listing."""
    # Pager.pages() is typed as an AsyncIterator, though it is an async generator.
    async with aclosing(pages) as opened:  # type: ignore[type-var]
        return await anext(opened)


async def first_page(client: DevinClient, **filters: Any) -> Page[Session]:
    return await one_page(client.list_sessions(**filters).pages())


@pytest.mark.parametrize(
    ("scope", "filters"),
    [
        ("org", {}),
        ("org", ORG_FILTERS),
        ("org", {"is_archived": True, "first": 200, "after": "cursor-1"}),
        ("enterprise", {}),
        ("enterprise", ENTERPRISE_FILTERS),
    ],
    ids=[
        "org-bare",
        "org-every-filter",
        "org-paging",
        "enterprise-bare",
        "enterprise-every-filter",
    ],
)
async def test_list_sessions_is_accepted(
    clients: Callable[..., DevinClient],
    exchanges: list[Exchange],
    contract: Contract,
    scope: str,
    filters: dict[str, Any],
) -> None:
    page = await first_page(clients(scope), **{"first": 50, **filters})
    assert all(isinstance(s, Session) for s in page.items)
    assert_accepted(exchanges, contract, 1)
    query = exchanges[0].url.query
    for name, value in filters.items():
        if isinstance(value, list):
            assert query.getall(name) == value  # repeated keys, in order


@pytest.mark.parametrize("scope", SCOPES)
async def test_messages_are_accepted(
    clients: Callable[..., DevinClient],
    exchanges: list[Exchange],
    contract: Contract,
    scope: str,
) -> None:
    client = clients(scope)
    page = await one_page(client.list_messages(SESSION, first=25, after="cursor-1").pages())
    assert all(isinstance(m, Message) for m in page.items)
    assert isinstance(await client.send_message(SESSION, "Use the main branch"), Session)
    sent = await client.send_message(
        SESSION,
        "See the attached log",
        message_as_user_id="user-1",
        attachment_urls=["https://example.com/log.txt"],
    )
    assert isinstance(sent, Session)
    assert_accepted(exchanges, contract, 3)


@pytest.mark.parametrize("archive", [False, True])
async def test_terminate_is_accepted(
    clients: Callable[..., DevinClient],
    exchanges: list[Exchange],
    contract: Contract,
    archive: bool,
) -> None:
    client = clients("org")
    assert isinstance(await client.terminate_session(SESSION, archive=archive), Session)
    assert_accepted(exchanges, contract, 1)
    assert exchanges[0].url.query.get("archive") == ("true" if archive else None)


async def test_archive_is_accepted(
    clients: Callable[..., DevinClient],
    exchanges: list[Exchange],
    contract: Contract,
) -> None:
    assert isinstance(await clients("org").archive_session(SESSION), Session)
    assert_accepted(exchanges, contract, 1)


@pytest.mark.parametrize("scope", SCOPES)
async def test_tags_are_accepted(
    clients: Callable[..., DevinClient],
    exchanges: list[Exchange],
    contract: Contract,
    scope: str,
) -> None:
    client = clients(scope)
    for tags in (
        await client.get_tags(SESSION),
        await client.append_tags(SESSION, ["ci", "backend"]),
        await client.replace_tags(SESSION, [f"tag-{i}" for i in range(50)]),  # the maximum
        await client.replace_tags(SESSION, []),
    ):
        assert all(isinstance(t, str) for t in tags)
    assert_accepted(exchanges, contract, 4)


@pytest.mark.parametrize("scope", SCOPES)
async def test_insights_are_accepted(
    clients: Callable[..., DevinClient],
    exchanges: list[Exchange],
    contract: Contract,
    scope: str,
) -> None:
    # The spec has insights/generate in both scopes, GET .../insights in org scope only.
    client = clients(scope)
    generated = await client.generate_insights(SESSION)
    assert isinstance(generated, InsightsGeneration)
    assert isinstance(generated.status, str)
    if scope == "org":
        assert isinstance(await client.get_insights(SESSION), SessionInsights)
    assert_accepted(exchanges, contract, 2 if scope == "org" else 1)


@pytest.mark.parametrize("scope", SCOPES)
async def test_attachments_are_accepted(
    clients: Callable[..., DevinClient],
    exchanges: list[Exchange],
    contract: Contract,
    scope: str,
) -> None:
    attachments = await clients(scope).list_attachments(SESSION)
    assert all(isinstance(a, Attachment) for a in attachments)
    assert_accepted(exchanges, contract, 1)


async def test_upload_attachment_is_accepted(
    clients: Callable[..., DevinClient],
    exchanges: list[Exchange],
    contract: Contract,
) -> None:
    uploaded = await clients("org").upload_attachment(b"hello", name="hello.txt")
    assert isinstance(uploaded, UploadedAttachment)
    # A multipart body, not JSON: checked here rather than by assert_accepted.
    (exchange,) = exchanges
    assert 200 <= exchange.status < 300, exchange.violations
    assert exchange.violations is None, exchange.violations
    declared = contract.spec["paths"]["/v3/organizations/{org_id}/attachments"]["post"]
    assert "multipart/form-data" in declared["requestBody"]["content"]
    assert b'name="file"; filename="hello.txt"' in exchange.body


@pytest.mark.parametrize("scope", SCOPES)
async def test_polling_and_following_are_accepted(
    clients: Callable[..., DevinClient],
    exchanges: list[Exchange],
    contract: Contract,
    scope: str,
) -> None:
    # Settled at once, so each wait ends after its first poll. Two ids make the org
    # client's poller read them with one GET .../sessions?session_ids=...&first=200.
    client = clients(scope)
    ids = [SESSION, "devin-fedcba9876543210"]
    results = await client.await_sessions(ids, timeout=10, until=lambda s: True)
    assert [r.error for r in results] == [None, None]
    assert all(isinstance(r.session, Session) for r in results)
    if scope == "org":
        (poll, *_) = [e for e in exchanges if e.url.path.endswith("/sessions")]
        assert poll.url.query.getall("session_ids") == ids
        assert poll.url.query["first"] == "200"
    async with aclosing(client.follow_session(WaitState(SESSION), until=lambda s: True)) as updates:
        seen = [update async for update in updates]
    assert seen
    assert all(isinstance(update, SessionUpdate) for update in seen)
    assert exchanges
    assert_accepted(exchanges, contract, len(exchanges))


# ------------------------------------------------------------------ dynamic responses

# Calls per operation and scope; a few hundred decoded responses in all.
DYNAMIC_CALLS: dict[str, int] = {
    "get_session": 50,
    "list_sessions": 40,
    "list_messages": 30,
    "list_attachments": 30,
    "get_tags": 20,
    "send_message": 10,
    "generate_insights": 10,
}
ORG_ONLY_CALLS: dict[str, int] = {
    "create_session": 10,
    "terminate_session": 5,
    "archive_session": 5,
    "get_insights": 10,
}


def _dynamic_call(client: DevinClient, name: str) -> Callable[[], Awaitable[object]]:
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "get_session": lambda: client.get_session(SESSION),
        "list_sessions": lambda: one_page(client.list_sessions(first=10).pages()),
        "list_messages": lambda: one_page(client.list_messages(SESSION, first=10).pages()),
        "list_attachments": lambda: client.list_attachments(SESSION),
        "get_tags": lambda: client.get_tags(SESSION),
        "send_message": lambda: client.send_message(SESSION, "hello"),
        "create_session": lambda: client.create_session("Fix it"),
        "terminate_session": lambda: client.terminate_session(SESSION),
        "archive_session": lambda: client.archive_session(SESSION),
        "generate_insights": lambda: client.generate_insights(SESSION),
        "get_insights": lambda: client.get_insights(SESSION),
    }
    return calls[name]


def _is_model(name: str, result: object) -> bool:
    if name in ("list_sessions", "list_messages"):
        kind = Session if name == "list_sessions" else Message
        return isinstance(result, Page) and all(isinstance(i, kind) for i in result.items)
    if name == "list_attachments":
        return isinstance(result, tuple) and all(isinstance(a, Attachment) for a in result)
    if name == "get_tags":
        return isinstance(result, tuple) and all(isinstance(t, str) for t in result)
    if name == "generate_insights":
        return isinstance(result, InsightsGeneration)
    if name == "get_insights":
        return isinstance(result, SessionInsights)
    return isinstance(result, Session)


@pytest.mark.parametrize("scope", SCOPES)
async def test_random_schema_valid_responses_decode(
    prism: str, exchanges: list[Exchange], contract: Contract, scope: str
) -> None:
    calls = {**DYNAMIC_CALLS, **(ORG_ONLY_CALLS if scope == "org" else {})}
    http = await _http_session(exchanges, headers={"Prefer": "dynamic=true"})
    org_id = ORG if scope == "org" else None
    decoded: dict[str, int] = dict.fromkeys(calls, 0)
    try:
        async with DevinClient(
            KEY,
            org_id=org_id,
            base_url=prism,
            session=http,
            max_retries=0,
            exactly_once_create=False,
        ) as client:
            async with asyncio.timeout(60):  # bounded: a few hundred requests take seconds
                for name, count in calls.items():
                    call = _dynamic_call(client, name)
                    results = await asyncio.gather(*(call() for _ in range(count)))
                    decoded[name] = sum(_is_model(name, r) for r in results)
    finally:
        await http.close()
    assert decoded == calls
    assert_accepted(exchanges, contract, sum(calls.values()))
