"""A client's settings: read from the arguments and the environment, checked once."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import attrs

from . import _protocol
from ._errors import ConfigurationError
from ._retry import Sleep
from ._waiting.settle import WaitOptions

__all__ = [
    "Configured",
    "InstantTime",
    "Settings",
    "client_time",
    "env_proxy",
    "instant",
    "instant_enabled",
    "positive",
    "set_instant",
]

Clock = Callable[[], float]
_instant = False


class InstantTime:
    """A clock and a sleep for tests: each sleep lets the loop run once, then jumps.

    ``sleep(delay)`` yields to the event loop once (other tasks run, a cancellation lands)
    and then moves ``clock`` on to at least the sleep's end, so every delay of a client
    (retry backoff, rate limiting, Retry-After pauses, poll intervals, deadlines) passes
    at once and nothing spins waiting for real time to catch up. The clock follows
    ``time.monotonic`` plus the time jumped, and never goes back.
    """

    def __init__(self) -> None:
        self._jumped = 0.0
        self._lock = threading.Lock()

    def clock(self) -> float:
        """The monotonic time plus every jump so far, seconds."""
        return time.monotonic() + self._jumped

    async def sleep(self, delay: float) -> None:
        """Yield to the loop once, then move the clock past ``delay`` seconds from now."""
        end = self.clock() + max(delay, 0.0)
        await asyncio.sleep(0)
        with self._lock:
            self._jumped = max(self._jumped, end - time.monotonic())


def set_instant(enabled: bool = True) -> None:
    """Make the delays of clients created from now on instant (``enabled``) or real.

    A client created while it is on, without ``sleep=`` or ``clock=``, gets its own
    ``InstantTime``: retries, backoff, rate limiting and the polls and deadlines of waits
    take no real time (waits time out after as many polls as their virtual deadline
    allows). Requests themselves keep their real timeouts.
    """
    global _instant  # one process-wide switch, like stamina's testing mode
    _instant = bool(enabled)


def instant_enabled() -> bool:
    """Whether ``set_instant(True)`` is in force."""
    return _instant


@contextmanager
def instant(enabled: bool = True) -> Iterator[None]:
    """``set_instant(enabled)`` for the ``with`` block, then back to what it was."""
    before = _instant
    set_instant(enabled)
    try:
        yield
    finally:
        set_instant(before)


def client_time(sleep: Sleep | None, clock: Clock | None) -> tuple[Sleep, Clock]:
    """A client's sleep and clock: those given, else instant ones if switched on, else real.

    With only ``sleep`` given the clock is ``time.monotonic`` (the governor takes a sleep
    that did not advance it as having reached its end, so it does not spin).
    """
    if sleep is None and clock is None and _instant:
        fake = InstantTime()
        return fake.sleep, fake.clock
    return (asyncio.sleep if sleep is None else sleep), (time.monotonic if clock is None else clock)


def positive(name: str, value: float) -> float:
    """Return ``value`` as seconds if it is a positive finite number, else raise."""
    return _protocol.check_positive(name, value, error=ConfigurationError)


def _usable_key(key: object) -> bool:
    """An API key is one token of visible ASCII: it travels in an HTTP header."""
    return isinstance(key, str) and bool(key) and all("!" <= c <= "~" for c in key)


def _check_base_path(base_url: str) -> str:
    """Refuse a base URL naming an API version: request paths start with ``/v3/`` already.

    Any other path (a proxy's prefix) is kept: requests go to ``base_url + "/v3/..."``.

    Raises:
        ConfigurationError: a path segment such as ``v3`` or ``v1``.
    """
    path = urllib.parse.urlsplit(base_url).path
    if any(re.fullmatch(r"v\d+", segment) for segment in path.split("/")):
        raise ConfigurationError(
            f"base_url must not include an API version path ({path!r}): the client adds "
            "/v3/... itself; give the API's root, e.g. https://api.devin.ai"
        )
    return base_url


def env_proxy(base_url: str) -> str | None:
    """Return the proxy that ``HTTP_PROXY``/``HTTPS_PROXY`` name for ``base_url``, or None.

    Read as httpx and requests read them (the standard library's ``getproxies`` and
    ``proxy_bypass``, so ``NO_PROXY`` bypasses). ``~/.netrc`` is not read: proxy
    credentials go in the proxy URL, and nothing from the environment can add or
    replace the Authorization header. A plain-http base URL (loopback only) goes
    through a loopback proxy only; any other proxy is skipped, because the proxy
    would read the API key in clear (an https base URL is tunnelled with CONNECT).

    Raises:
        ConfigurationError: the proxy named for the scheme is not an ``http://`` URL
            (its value, which may hold a password, is not shown).
    """
    parts = urllib.parse.urlsplit(base_url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    proxy = proxy if "://" in proxy else f"http://{proxy}"  # "host:port", as httpx reads it
    proxy_parts = urllib.parse.urlsplit(proxy)
    if parts.scheme == "http" and not _protocol.is_loopback(proxy_parts.hostname or ""):
        return None
    if proxy_parts.scheme != "http" or not proxy_parts.hostname:
        raise ConfigurationError(
            f"the {parts.scheme.upper()}_PROXY environment variable must be an http:// URL "
            "with a host (the value is not shown): fix or unset it, or pass trust_env=False "
            "to ignore it"
        )
    return proxy


@attrs.frozen
class Settings:
    """What a client was configured with; the key is never shown."""

    api_key: str = attrs.field(repr=False)
    org_id: str | None
    base_url: str
    timeout: float
    poll_interval: float
    max_poll_interval: float
    # From the environment when trust_env; its URL may hold a password, so not shown.
    proxy: str | None = attrs.field(default=None, repr=False)

    @classmethod
    def read(
        cls,
        api_key: str | None,
        org_id: str | None,
        base_url: str | None,
        timeout: float,
        poll_interval: float,
        max_poll_interval: float,
        trust_env: bool = True,
    ) -> Settings:
        """Check the arguments, taking unset ones from ``DEVIN_API_KEY``, ``DEVIN_ORG_ID``
        and ``DEVIN_BASE_URL``, and with ``trust_env`` the proxy (``env_proxy``).

        Raises:
            ConfigurationError: no usable API key, an unsafe base URL or org id, a
                duration out of range, or an unusable proxy in the environment.
        """
        key = api_key if api_key is not None else os.environ.get("DEVIN_API_KEY", "")
        if not _usable_key(key):
            # The message never quotes the key, not even a bad one.
            raise ConfigurationError(
                "no usable API key: pass api_key= or set DEVIN_API_KEY to a cog_ "
                "service-user key or personal access token (one token of visible ASCII)"
            )
        org = org_id if org_id is not None else os.environ.get("DEVIN_ORG_ID") or None
        url = base_url or os.environ.get("DEVIN_BASE_URL") or _protocol.DEFAULT_BASE_URL
        try:  # the rule of every wait's options, raised as a setting's error
            WaitOptions(poll_interval=poll_interval, max_poll_interval=max_poll_interval)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if not isinstance(trust_env, bool):
            raise ConfigurationError(f"trust_env must be a bool, not {type(trust_env).__name__}")
        url = _check_base_path(_protocol.check_base_url(url))
        return cls(
            api_key=key,
            org_id=_protocol.check_org_id(org) if org is not None else None,
            base_url=url,
            timeout=positive("timeout", timeout),
            poll_interval=float(poll_interval),
            max_poll_interval=float(max_poll_interval),
            proxy=env_proxy(url) if trust_env else None,
        )


class Configured:
    """The read-only settings of a client (a base class of ``DevinClient``)."""

    _settings: Settings

    @property
    def org_id(self) -> str | None:
        """The organization, or None for the enterprise scope."""
        return self._settings.org_id

    @property
    def base_url(self) -> str:
        """The API's base URL, without a trailing slash."""
        return self._settings.base_url

    @property
    def timeout(self) -> float:
        """The per-request timeout, seconds."""
        return self._settings.timeout

    @property
    def poll_interval(self) -> float:
        """The default first delay between the polls of a wait, seconds."""
        return self._settings.poll_interval

    @property
    def max_poll_interval(self) -> float:
        """The default cap on the delay between the polls of a wait, seconds."""
        return self._settings.max_poll_interval
