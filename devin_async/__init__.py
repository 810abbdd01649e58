"""devin_async: an async-first Python client for the Devin REST API v3.

The names below are imported on first use (PEP 562), so importing the package, or a
module of it such as the pytest plugin, costs nothing until a name is touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._client import CREATE_TAG_PREFIX, DevinClient, await_session
    from ._convert import dumps_wait_state, loads_wait_state
    from ._errors import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        AwaitTimeoutError,
        BadRequestError,
        ClientClosedError,
        ConfigurationError,
        ConflictError,
        CreateOutcomeUnknownError,
        DevinError,
        InternalServerError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        ResponseValidationError,
        UnprocessableEntityError,
        ValidationDetail,
    )
    from ._events import (
        Event,
        Hook,
        RateLimitPaused,
        RequestSent,
        ResponseReceived,
        RetryScheduled,
        SessionChanged,
        WaitFinished,
    )
    from ._fanout import SessionResult
    from ._models import (
        AdvancedMode,
        Attachment,
        CreateSessionRequest,
        DevinMode,
        InsightsGeneration,
        InsightsStatus,
        Message,
        MessageSource,
        Page,
        PullRequest,
        Session,
        SessionCategory,
        SessionInsights,
        SessionOrigin,
        SessionSecret,
        SessionStatus,
        StatusDetail,
        UploadedAttachment,
        WaitState,
    )
    from ._paging import Pager
    from ._protocol import Request, Response, Transport
    from ._sync import SyncDevinClient
    from ._version import __version__
    from ._waiting import (
        Predicate,
        SessionFollow,
        SessionUpdate,
        SessionWaits,
        SessionWatch,
        is_settled,
        is_settled_or_awaiting_approval,
    )

__all__ = [
    "CREATE_TAG_PREFIX",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AdvancedMode",
    "Attachment",
    "AuthenticationError",
    "AwaitTimeoutError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "CreateOutcomeUnknownError",
    "CreateSessionRequest",
    "DevinClient",
    "DevinError",
    "DevinMode",
    "Event",
    "Hook",
    "InsightsGeneration",
    "InsightsStatus",
    "InternalServerError",
    "Message",
    "MessageSource",
    "NotFoundError",
    "Page",
    "Pager",
    "PermissionDeniedError",
    "Predicate",
    "PullRequest",
    "RateLimitError",
    "RateLimitPaused",
    "Request",
    "RequestSent",
    "Response",
    "ResponseReceived",
    "ResponseValidationError",
    "RetryScheduled",
    "Session",
    "SessionCategory",
    "SessionChanged",
    "SessionFollow",
    "SessionInsights",
    "SessionOrigin",
    "SessionResult",
    "SessionSecret",
    "SessionStatus",
    "SessionUpdate",
    "SessionWaits",
    "SessionWatch",
    "StatusDetail",
    "SyncDevinClient",
    "Transport",
    "UnprocessableEntityError",
    "UploadedAttachment",
    "ValidationDetail",
    "WaitFinished",
    "WaitState",
    "__version__",
    "await_session",
    "dumps_wait_state",
    "is_settled",
    "is_settled_or_awaiting_approval",
    "loads_wait_state",
]

# Where each public name lives: imported from there on first use.
_EXPORTS: dict[str, str] = {
    "CREATE_TAG_PREFIX": "_client",
    "DevinClient": "_client",
    "await_session": "_client",
    "dumps_wait_state": "_convert",
    "loads_wait_state": "_convert",
    "APIConnectionError": "_errors",
    "APIStatusError": "_errors",
    "APITimeoutError": "_errors",
    "AuthenticationError": "_errors",
    "AwaitTimeoutError": "_errors",
    "BadRequestError": "_errors",
    "ClientClosedError": "_errors",
    "ConfigurationError": "_errors",
    "ConflictError": "_errors",
    "CreateOutcomeUnknownError": "_errors",
    "DevinError": "_errors",
    "InternalServerError": "_errors",
    "NotFoundError": "_errors",
    "PermissionDeniedError": "_errors",
    "RateLimitError": "_errors",
    "ResponseValidationError": "_errors",
    "UnprocessableEntityError": "_errors",
    "ValidationDetail": "_errors",
    "Event": "_events",
    "Hook": "_events",
    "RateLimitPaused": "_events",
    "RequestSent": "_events",
    "ResponseReceived": "_events",
    "RetryScheduled": "_events",
    "SessionChanged": "_events",
    "WaitFinished": "_events",
    "SessionResult": "_fanout",
    "AdvancedMode": "_models",
    "Attachment": "_models",
    "CreateSessionRequest": "_models",
    "DevinMode": "_models",
    "InsightsGeneration": "_models",
    "InsightsStatus": "_models",
    "SessionInsights": "_models",
    "Message": "_models",
    "MessageSource": "_models",
    "Page": "_models",
    "PullRequest": "_models",
    "Session": "_models",
    "SessionCategory": "_models",
    "SessionOrigin": "_models",
    "SessionSecret": "_models",
    "SessionStatus": "_models",
    "StatusDetail": "_models",
    "UploadedAttachment": "_models",
    "WaitState": "_models",
    "Pager": "_paging",
    "Request": "_protocol",
    "Response": "_protocol",
    "Transport": "_protocol",
    "SyncDevinClient": "_sync",
    "__version__": "_version",
    "Predicate": "_waiting",
    "SessionFollow": "_waiting",
    "SessionUpdate": "_waiting",
    "SessionWaits": "_waiting",
    "SessionWatch": "_waiting",
    "is_settled": "_waiting",
    "is_settled_or_awaiting_approval": "_waiting",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'devin_async' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module.lstrip('.')}", __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
