"""The query filters of the v3 list-sessions endpoints, by name.

Source: https://docs.devin.ai/sdk/api/DevinApi/interfaces/SessionsQueryParams.md
"""

from __future__ import annotations

__all__ = ["ARRAY_FILTERS", "LIST_FILTERS"]

ARRAY_FILTERS = frozenset(
    {"session_ids", "origins", "user_ids", "service_user_ids", "org_ids", "tags", "repo_names"}
)
"""The filters that take a list of strings."""

LIST_FILTERS = ARRAY_FILTERS | {
    *("created_after", "created_before", "updated_after", "updated_before"),
    *("playbook_id", "schedule_id", "category", "is_archived"),
}
"""Every filter of the list-sessions endpoints (org and enterprise scope)."""
