"""A tiny, fast HTTP/1.1 server that answers every session GET with one canned body.

It runs in its own process (pinned to its own CPU when the machine allows), so the
client's ``time.process_time()`` measures the client alone. Each keep-alive request is
answered by writing a precomputed response: no parsing beyond finding the end of the
headers and checking the request line, no allocation per request beyond the read.

``GET /v3/organizations/{org}/sessions/{id}`` gets 200 with the ~1 KB SessionResponse of
``_payload``; any other GET gets a keep-alive 404; any other method gets 405 and the
connection is closed (requests with bodies are not parsed).

Rate limiting, for the governor benchmark: ``--reject P`` answers a random fraction P
of session GETs 429 (seeded by ``--seed``); ``--limit N`` answers 429 when a token
bucket of ``N`` tokens/second holding ``--burst`` seconds' worth (default 1) is empty;
``--retry-after S`` adds ``Retry-After: S`` to those 429s (default: no header). With
any of these (or ``--stats``) the server then prints ``STATS {"ok": [...], "limited":
[...]}``: the 200s and 429s answered in each second since the first request.

Run alone::

    python -m benchmarks.canned_server --cpu 1

It prints ``PORT <n>`` once listening on 127.0.0.1 (random port), and stops on end of
standard input, SIGINT/SIGTERM, or after ``--max-seconds``; it then prints
``SERVED <n>`` (requests answered).

From Python, ``CannedServer`` starts and stops it::

    with CannedServer(cpu=1) as server:
        ...  # server.url, server.port
    server.served  # requests answered
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import gc
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from ._payload import BODY

__all__ = ["CannedServer", "pin_to_cpu", "usable_cpus"]

HOST = "127.0.0.1"
_MAX_HEADER_BYTES = 64 * 1024
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0


def usable_cpus() -> list[int]:
    """Return the CPUs this process may run on, sorted (empty when unknown)."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


def pin_to_cpu(cpu: int | None) -> bool:
    """Pin this process to one CPU; return False when the platform cannot."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return False
    return True


def _response(status: str, body: bytes, *, close: bool = False, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
        "Server: canned\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        + extra
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode("ascii") + body


class _Counter:
    served = 0


class _Limiter:
    """Which session GETs get a 429, and the 200s and 429s counted per second."""

    reject = 0.0  # random fraction answered 429
    limit: float | None = None  # token bucket rate, tokens/second
    capacity = 0.0
    tokens = 0.0
    last = 0.0
    first: float | None = None
    rng = random.Random(0)
    ok: list[int] = []  # noqa: RUF012 - one server per process
    limited: list[int] = []  # noqa: RUF012
    active = False

    @classmethod
    def allow(cls) -> bool:
        now = time.monotonic()
        if cls.first is None:
            cls.first = cls.last = now
        second = int(now - cls.first)
        while len(cls.ok) <= second:
            cls.ok.append(0)
            cls.limited.append(0)
        allowed = cls.rng.random() >= cls.reject
        if allowed and cls.limit is not None:
            cls.tokens = min(cls.capacity, cls.tokens + (now - cls.last) * cls.limit)
            cls.last = now
            allowed = cls.tokens >= 1.0
            if allowed:
                cls.tokens -= 1.0
        if allowed:
            cls.ok[second] += 1
        else:
            cls.limited[second] += 1
        return allowed


class _CannedHTTP(asyncio.Protocol):
    """One keep-alive connection; answers each complete request head at once."""

    __slots__ = ("_buf", "_transport")

    OK = _response("200 OK", BODY)
    NOT_FOUND = _response("404 Not Found", b'{"detail":"Not Found"}')
    NOT_ALLOWED = _response("405 Method Not Allowed", b'{"detail":"GET only"}', close=True)
    LIMITED = _response("429 Too Many Requests", b'{"detail":"rate limited"}')

    def __init__(self) -> None:
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        buf = self._buf + data if self._buf else data
        start = 0
        out: list[bytes] = []
        while True:
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                break
            line = buf[start : buf.find(b"\r\n", start)]
            start = end + 4
            if not line.startswith(b"GET "):
                out.append(self.NOT_ALLOWED)
                transport.write(b"".join(out))
                transport.close()
                _Counter.served += len(out)
                return
            if line.startswith(b"GET /v3/organizations/") and b"/sessions/" in line:
                out.append(self.OK if not _Limiter.active or _Limiter.allow() else self.LIMITED)
            else:
                out.append(self.NOT_FOUND)
        self._buf = buf[start:]
        if len(self._buf) > _MAX_HEADER_BYTES:
            transport.close()
            return
        if out:
            _Counter.served += len(out)
            transport.write(out[0] if len(out) == 1 else b"".join(out))


async def _serve(port: int, max_seconds: float, watch_stdin: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    server = await loop.create_server(_CannedHTTP, HOST, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if watch_stdin:
        fd = sys.stdin.fileno()

        def on_stdin() -> None:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                loop.remove_reader(fd)
                stop.set()

        try:
            loop.add_reader(fd, on_stdin)
        except OSError:  # a file or /dev/null cannot be polled: rely on signals and the limit
            print(
                "standard input cannot be watched; stopping on signal or time limit",
                file=sys.stderr,
            )
    print(f"PORT {bound}", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max_seconds)
    server.close()
    await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop after this")
    parser.add_argument(
        "--no-stdin", action="store_true", help="do not stop at end of standard input"
    )
    parser.add_argument("--reject", type=float, default=0.0, help="random 429 fraction")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random 429s")
    parser.add_argument("--limit", type=float, default=None, help="token bucket, per second")
    parser.add_argument("--burst", type=float, default=1.0, help="bucket size, seconds")
    parser.add_argument("--retry-after", default=None, help="Retry-After of the 429s")
    parser.add_argument("--stats", action="store_true", help="print STATS even without 429s")
    args = parser.parse_args(argv)
    pin_to_cpu(args.cpu)
    _Limiter.active = args.stats or args.reject > 0 or args.limit is not None
    _Limiter.reject = args.reject
    _Limiter.rng = random.Random(args.seed)
    if args.limit is not None:
        _Limiter.limit = args.limit
        _Limiter.capacity = _Limiter.tokens = max(1.0, args.limit * args.burst)
    if args.retry_after is not None:
        _CannedHTTP.LIMITED = _response(
            "429 Too Many Requests",
            b'{"detail":"rate limited"}',
            extra=f"Retry-After: {args.retry_after}\r\n",
        )
    gc.disable()  # nothing here builds cycles; keep collections out of the latency
    asyncio.run(_serve(args.port, args.max_seconds, watch_stdin=not args.no_stdin))
    print(f"SERVED {_Counter.served}", flush=True)
    if _Limiter.active:
        stats = {"ok": _Limiter.ok, "limited": _Limiter.limited}
        print("STATS " + json.dumps(stats, separators=(",", ":")), flush=True)
    return 0


class CannedServer:
    """Start the canned server in a child process; a context manager.

    Args:
        cpu: pin the server process to this CPU (None: no pinning).
        max_seconds: the server stops by itself after this long, whatever happens.
        args: more command-line options (``--reject``, ``--limit``, ...); then
            ``stats`` holds the per-second counts once stopped.
    """

    def __init__(
        self, cpu: int | None = None, max_seconds: float = 600.0, args: Sequence[str] = ()
    ) -> None:
        self.cpu = cpu
        self.max_seconds = max_seconds
        self.args = list(args)
        self.port = 0
        self.served: int | None = None
        self.stats: dict[str, list[int]] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> CannedServer:
        cmd = [sys.executable, "-m", "benchmarks.canned_server"]
        cmd += ["--max-seconds", str(self.max_seconds)]
        if self.cpu is not None:
            cmd += ["--cpu", str(self.cpu)]
        cmd += self.args
        self._proc = proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], _START_TIMEOUT)
        line = proc.stdout.readline().decode() if ready else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"canned server did not start (got {line!r})")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        assert proc.stdout is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out = proc.stdout.read()
        proc.stdout.close()
        for line in out.decode().splitlines():
            if line.startswith("SERVED "):
                self.served = int(line.split()[1])
            elif line.startswith("STATS "):
                self.stats = json.loads(line[len("STATS ") :])

    def __enter__(self) -> CannedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
