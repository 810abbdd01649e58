"""The ~1 KB SessionResponse every benchmark serves and decodes.

Every field of the spec's SessionResponse is present with a realistic, non-null value
(spec/devin-v3-sessions.openapi.yaml, ``components.schemas.SessionResponse``), so
the decoders do their full work: open enums, nested pull requests, optional lists and
the free-form ``structured_output`` object.
"""

from __future__ import annotations

import json
from typing import Any

ORG_ID = "org-bench"
API_KEY = "cog_bench"
SESSION_ID = "devin-7f3c9a1e5b2d4c8f9e0a6b1d2c3e4f5a"
SESSION_PATH = f"/v3/organizations/{ORG_ID}/sessions/{SESSION_ID}"

SESSION: dict[str, Any] = {
    "session_id": SESSION_ID,
    "url": "https://app.devin.ai/sessions/7f3c9a1e5b2d4c8f9e0a6b1d2c3e4f5a",
    "status": "running",
    "status_detail": "working",
    "tags": ["payments-service", "flaky-test", "ci", "priority:high"],
    "org_id": ORG_ID,
    "created_at": 1767225600,
    "updated_at": 1767229321,
    "acus_consumed": 3.75,
    "pull_requests": [
        {"pr_url": "https://github.com/acme-corp/payments-service/pull/1287", "pr_state": "open"},
        {"pr_url": "https://github.com/acme-corp/ci-config/pull/342", "pr_state": "merged"},
    ],
    "category": "bug_fixing",
    "subcategory": "Test failures",
    "origin": "api",
    "child_session_ids": [
        "devin-0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "devin-9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    ],
    "parent_session_id": "devin-1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f",
    "is_archived": False,
    "playbook_id": "playbook-4e6a8c0b2d4f6a8c",
    "service_user_id": "service-user-5b7d9f1a3c5e",
    "user_id": "user-2a4c6e8f0b1d",
    "title": "Fix flaky RetryPolicy test in payments-service CI",
    "structured_output": {
        "summary": "Replaced wall-clock sleeps with an injected clock in test_retry.py",
        "tests_passed": True,
        "files_changed": 3,
        "confidence": 0.92,
    },
}

BODY: bytes = json.dumps(SESSION, separators=(",", ":")).encode()
