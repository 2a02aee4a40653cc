"""Roles, and what each may do: one table for the internal API's authorisation, the
configuration's tokens, the directory's role marks and the demo network's tokens. Which role
sends which form is the form's own fact (`FormType.sender_role`), checked in one place
(`gateway.core.policy.check_sender_role`) at submission and at reception."""

from __future__ import annotations

CASE_OFFICER = "case-officer"
HEALTH_PRACTITIONER = "health-practitioner"
ADMINISTRATOR = "administrator"
AUDITOR = "auditor"

ROLES: tuple[str, ...] = (CASE_OFFICER, HEALTH_PRACTITIONER, ADMINISTRATOR, AUDITOR)
"""Every role, in the order the documentation and generated configurations list them."""

PERMISSIONS: dict[str, frozenset[str]] = {
    "submit": frozenset({CASE_OFFICER, HEALTH_PRACTITIONER}),
    "read-messages": frozenset({CASE_OFFICER, HEALTH_PRACTITIONER}),
    "health": frozenset(ROLES),
    "adjust-clock": frozenset({ADMINISTRATOR}),
    "read-register": frozenset({AUDITOR}),
    "administer": frozenset({ADMINISTRATOR}),
}
"""Internal API permission -> the roles that hold it."""
