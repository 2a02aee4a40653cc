"""Roles, and what each may do: one table for the internal API's authorisation, the
configuration's tokens, the directory's role marks and the demo network's tokens. Which role
sends which form is the form's own fact (`FormType.sender_role`), checked in one place
(`gateway.core.policy.check_sender_role`) at submission and at reception."""

from __future__ import annotations

CASE_OFFICER = "case-officer"
HEALTH_PRACTITIONER = "health-practitioner"
ADMINISTRATOR = "administrator"
AUDITOR = "auditor"
LIAISON_OFFICER = "liaison-officer"
"""Reads and sends the operational family (ICONET early warnings, Council Decision
2005/267/EC; liaison officers' reports, Regulation (EU) 2019/1240); sees no Dublin case."""

ROLES: tuple[str, ...] = (
    CASE_OFFICER,
    HEALTH_PRACTITIONER,
    ADMINISTRATOR,
    AUDITOR,
    LIAISON_OFFICER,
)
"""Every role, in the order the documentation and generated configurations list them."""

PERMISSIONS: dict[str, frozenset[str]] = {
    "submit": frozenset({CASE_OFFICER, HEALTH_PRACTITIONER, LIAISON_OFFICER}),
    "read-messages": frozenset({CASE_OFFICER, HEALTH_PRACTITIONER}),
    "health": frozenset(ROLES),
    "adjust-clock": frozenset({ADMINISTRATOR}),
    "read-register": frozenset({AUDITOR}),
    "administer": frozenset({ADMINISTRATOR}),
    "operational": frozenset({LIAISON_OFFICER}),
}
"""Internal API permission -> the roles that hold it."""
