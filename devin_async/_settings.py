"""A client's settings: read from the arguments and the environment, checked once."""

from __future__ import annotations

import os

import attrs

from . import _protocol
from ._errors import ConfigurationError
from ._waiting.settle import WaitOptions

__all__ = ["Configured", "Settings", "positive"]


def positive(name: str, value: float) -> float:
    """Return ``value`` as seconds if it is a positive finite number, else raise."""
    return _protocol.check_positive(name, value, error=ConfigurationError)


def _usable_key(key: object) -> bool:
    """An API key is one token of visible ASCII: it travels in an HTTP header."""
    return isinstance(key, str) and bool(key) and all("!" <= c <= "~" for c in key)


@attrs.frozen
class Settings:
    """What a client was configured with; the key is never shown."""

    api_key: str = attrs.field(repr=False)
    org_id: str | None
    base_url: str
    timeout: float
    poll_interval: float
    max_poll_interval: float

    @classmethod
    def read(
        cls,
        api_key: str | None,
        org_id: str | None,
        base_url: str | None,
        timeout: float,
        poll_interval: float,
        max_poll_interval: float,
    ) -> Settings:
        """Check the arguments, taking unset ones from ``DEVIN_API_KEY``, ``DEVIN_ORG_ID``
        and ``DEVIN_BASE_URL``.

        Raises:
            ConfigurationError: no usable API key, an unsafe base URL or org id, or a
                duration out of range.
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
        return cls(
            api_key=key,
            org_id=_protocol.check_org_id(org) if org is not None else None,
            base_url=_protocol.check_base_url(url),
            timeout=positive("timeout", timeout),
            poll_interval=float(poll_interval),
            max_poll_interval=float(max_poll_interval),
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
