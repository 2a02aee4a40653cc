"""One table of roles and permissions (issue 15, item 5): the API, the configuration's
tokens, the directory's role marks and the forms all name roles from it."""

from __future__ import annotations

import pytest

from gateway.core.forms import FORM_TYPES
from gateway.core.policy import Reason, Rejection, check_sender_role
from gateway.core.roles import HEALTH_PRACTITIONER, PERMISSIONS, ROLES


def test_every_permission_names_known_roles_and_every_role_holds_one() -> None:
    granted = set().union(*PERMISSIONS.values())
    assert granted <= set(ROLES)
    assert granted == set(ROLES), "a role that may do nothing should not exist"


def test_every_form_is_sent_by_a_known_role() -> None:
    assert {ft.sender_role for ft in FORM_TYPES.values()} <= set(ROLES)


def test_art39_a_health_certificate_is_sent_by_a_health_practitioner_only() -> None:
    ft = FORM_TYPES["health-certificate"]
    check_sender_role(ft, HEALTH_PRACTITIONER)
    for role in set(ROLES) - {HEALTH_PRACTITIONER}:
        with pytest.raises(Rejection) as caught:
            check_sender_role(ft, role)
        assert caught.value.reason is Reason.ROLE_NOT_ALLOWED
