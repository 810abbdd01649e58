"""Request validation as FastAPI does it (422 ``detail`` lists) and RFC 9457 problem bodies."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from http.client import responses as _REASONS
from typing import Any

from aiohttp import web

__all__ = ["REDACTED"]

REDACTED = "**********"
"""What the server shows instead of a session secret value."""

_JSONObject = dict[str, Any]
_BODY = web.RequestKey("body", object)
_DEVIN_MODES = ("normal", "fast", "lite", "ultra", "fusion")  # the spec's DevinMode enum
_MODES_TEXT = ", ".join(f"'{m}'" for m in _DEVIN_MODES[:-1]) + f" or '{_DEVIN_MODES[-1]}'"


class _Reject(Exception):
    """Stop handling a request and answer with an API error."""

    def __init__(self, status: int, detail: str | list[_JSONObject], **extra: Any) -> None:
        super().__init__(status, detail)
        self.status, self.detail, self.extra = status, detail, extra

    def response(self, path: str) -> web.Response:
        """Render a 422 as FastAPI's ``{"detail": [...]}``, anything else as problem+json."""
        if isinstance(self.detail, list):
            return web.json_response({"detail": self.detail}, status=self.status)
        return _problem(self.status, self.detail, path, **self.extra)


def _problem(
    status: int, detail: str, path: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> web.Response:
    """Render an RFC 9457 problem+json response; ``extra`` adds extension members."""
    body = {
        "type": "about:blank",
        "title": _REASONS.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": path,
        **extra,
    }
    return web.json_response(
        body, status=status, headers=headers, content_type="application/problem+json"
    )


def _error(kind: str, loc: Sequence[str | int], msg: str, shown: Any, **ctx: Any) -> _JSONObject:
    """Build one FastAPI validation error item."""
    item = {"type": kind, "loc": list(loc), "msg": msg, "input": shown}
    return {**item, "ctx": ctx} if ctx else item


def _redact(body: Any) -> Any:
    """Return ``body`` with every session secret value replaced by ``REDACTED``."""
    if not isinstance(body, dict) or body.get("session_secrets") is None:
        return body
    secrets = body["session_secrets"]
    if not isinstance(secrets, list):
        return {**body, "session_secrets": REDACTED}
    shown = [
        ({**s, "value": REDACTED} if "value" in s else s) if isinstance(s, dict) else REDACTED
        for s in secrets
    ]
    return {**body, "session_secrets": shown}


_TYPES: dict[str, tuple[type, str, str]] = {
    "str": (str, "string_type", "Input should be a valid string"),
    "int": (int, "int_type", "Input should be a valid integer"),
    "bool": (bool, "bool_type", "Input should be a valid boolean"),
    "dict": (dict, "dict_type", "Input should be a valid dictionary"),
    "list": (list, "list_type", "Input should be a valid list"),
}
_CREATE_FIELDS = {
    **dict.fromkeys(("prompt", "title", "child_playbook_id", "create_as_user_id"), "str"),
    **dict.fromkeys(("platform", "playbook_id", "advanced_mode"), "str"),
    "devin_mode": "mode",
    **dict.fromkeys(("tags", "attachment_urls", "knowledge_ids", "repos"), "strs"),
    **dict.fromkeys(("secret_ids", "session_links"), "strs"),
    **dict.fromkeys(("bypass_approval", "resumable", "structured_output_required"), "bool"),
    "max_acu_limit": "int",
    "structured_output_schema": "dict",
    "session_secrets": "secrets",
}
_SECRET_FIELDS = {"key": "key", "value": "str", "sensitive": "bool"}
_MESSAGE_FIELDS = {"message": "str", "message_as_user_id": "str", "attachment_urls": "strs"}
_TAGS_FIELDS = {"tags": "strs"}


def _field_errors(
    obj: _JSONObject,
    shown: _JSONObject,
    fields: Mapping[str, str],
    loc: Sequence[str | int],
    required: Collection[str],
    not_null: Collection[str],
) -> list[_JSONObject]:
    """Check each field of ``obj``; ``shown`` is the redacted twin used for error inputs."""
    errors = []
    for name, kind in fields.items():
        if name not in obj:
            if name in required:
                errors.append(_error("missing", [*loc, name], "Field required", shown))
        elif obj[name] is not None or name in not_null:
            errors += _value_errors(kind, obj[name], shown[name], [*loc, name])
    return errors


def _value_errors(kind: str, value: Any, shown: Any, loc: Sequence[str | int]) -> list[_JSONObject]:
    """Check one value against ``kind`` (a ``_TYPES`` key or a special kind, e.g. "strs")."""
    if kind == "mode":
        if isinstance(value, str) and value in _DEVIN_MODES:
            return []
        return [_error("enum", loc, f"Input should be {_MODES_TEXT}", shown, expected=_MODES_TEXT)]
    if kind in ("strs", "secrets"):
        if not isinstance(value, list):
            return _value_errors("list", value, shown, loc)
        item = "str" if kind == "strs" else "secret"
        pairs = enumerate(zip(value, shown, strict=True))
        return [e for i, (v, s) in pairs for e in _value_errors(item, v, s, [*loc, i])]
    if kind == "secret":
        if not isinstance(value, dict):
            msg = "Input should be a valid dictionary or instance of SessionSecretInput"
            return [_error("model_type", loc, msg, shown)]
        required = ("key", "value")
        return _field_errors(value, shown, _SECRET_FIELDS, loc, required, _SECRET_FIELDS.keys())
    if kind == "key":
        if errors := _value_errors("str", value, shown, loc):
            return errors
        if not value:
            msg = "String should have at least 1 character"
            return [_error("string_too_short", loc, msg, shown, min_length=1)]
        if len(value) > 256:
            msg = "String should have at most 256 characters"
            return [_error("string_too_long", loc, msg, shown, max_length=256)]
        return []
    expected, error_type, msg = _TYPES[kind]
    # JSON true/false are Python ints: never accept them as integers.
    if isinstance(value, expected) and not (kind == "int" and isinstance(value, bool)):
        return []
    return [_error(error_type, loc, msg, shown)]


def _validate(
    body: Any,
    fields: Mapping[str, str],
    required: Collection[str],
    not_null: Collection[str] = (),
) -> _JSONObject:
    """Return ``body`` if it is an object whose fields have the right types, else raise a 422."""
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        raise _Reject(422, [_error("model_attributes_type", ["body"], msg, body)])
    not_null = {*required, *not_null}
    if errors := _field_errors(body, _redact(body), fields, ["body"], required, not_null):
        raise _Reject(422, errors)
    return body


def _json_body(request: web.Request) -> Any:
    """Return the request's parsed JSON body, or raise a 422 if it is missing or invalid."""
    body = request[_BODY]
    if isinstance(body, json.JSONDecodeError):
        error = _error("json_invalid", ["body", body.pos], "JSON decode error", {}, error=body.msg)
        raise _Reject(422, [error])
    if body is None:
        raise _Reject(422, [_error("missing", ["body"], "Field required", None)])
    return body


def _decode(raw: bytes) -> object:
    """Parse a request body: JSON value, None when empty, or the decode error."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        return exc
