"""The operational family: ICONET early-warning messages (Council Decision 2005/267/EC) and
immigration liaison officers' reports (Regulation (EU) 2019/1240), carried on the same
signed, acknowledged, registered transport as the Dublin forms, with none of their law: no
legal basis, no case, no time limit, and no personal data.

What is decided here (pure, no I/O): which network a message travels in and who may take
part; the family's own references; the handling codes a message carries and whether they
let it be passed on; which fields of a message are free text to check for personal data.
Everything else (signing, delivery, the register) is the Dublin transport's own."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.core.directory import Authority, Directory
from gateway.core.forms import OPERATIONAL_TYPES, FormType
from gateway.core.policy import Header, Reason, Rejection
from gateway.core.roles import LIAISON_OFFICER

FAMILY_LETTERS = {"early-warning": "EW", "liaison-report": "LR"}
"""The family part of an item's reference: the sender's letters, the family, a number."""
REFERENCE = re.compile(r"^[A-Z]{2}-(EW|LR)-[0-9]{6,18}$")
ITEMS = ("early-warning", "liaison-report")
"""The types that are items of their own (the others name an item: withdrawal, permission,
forwarding)."""
LIFECYCLE = ("item-withdrawal", "item-permission", "forwarded-item")
NOT_TEXT = frozenset(
    {
        "category",
        "topic",
        "country",
        "countryOfDeployment",
        "from",
        "to",
        "replaces",
        "item",
        "sha256",
        "size",
        "mediaType",
        "forwardTo",
        "original",
        "permission",
        "receivingServiceOnly",
        "noJudicialUseWithoutPermission",
        "noForwardingWithoutPermission",
        "judicialUse",
    }
)
"""Fields that hold codes, dates, digests or signed bytes rather than words: every other
string of a message is free text, checked for personal data."""


def is_operational(message_type: str) -> bool:
    return message_type in OPERATIONAL_TYPES


def reference_for(member_state: str, message_type: str, number: int) -> str:
    """An item's reference: e.g. BE-EW-000017 (the number is the item's row, unique)."""
    return f"{member_state}-{FAMILY_LETTERS[message_type]}-{number:06d}"


@dataclass(frozen=True)
class Handling:
    """Handling codes (as Europol's SIENA uses them): each true one restricts the receiver."""

    receiving_service_only: bool
    no_judicial_use_without_permission: bool
    no_forwarding_without_permission: bool
    other_restrictions: str | None = None

    @classmethod
    def of(cls, form: Mapping[str, Any]) -> Handling:
        h = form["handling"]
        return cls(
            bool(h["receivingServiceOnly"]),
            bool(h["noJudicialUseWithoutPermission"]),
            bool(h["noForwardingWithoutPermission"]),
            h.get("otherRestrictions"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "receiving_service_only": self.receiving_service_only,
            "no_judicial_use_without_permission": self.no_judicial_use_without_permission,
            "no_forwarding_without_permission": self.no_forwarding_without_permission,
            "other_restrictions": self.other_restrictions,
        }

    def forbids_forwarding(self) -> bool:
        """Passing it on needs the originator's permission: either code says so."""
        return self.no_forwarding_without_permission or self.receiving_service_only


def network_of(ft: FormType, item_network: str | None = None) -> str:
    """The network a message travels in: its type's, or for a message naming an item
    (withdrawal, permission, forwarding), the item's."""
    if ft.network != "operational":
        return ft.network
    if item_network is None:
        raise Rejection(Reason.ITEM_UNKNOWN, "the item this message names is unknown")
    return item_network


def members(directory: Directory, network: str, *, but: str | None = None) -> list[str]:
    """The authorities of a network (but one), in code order."""
    return sorted(
        a.code for a in directory.authorities.values() if network in a.networks and a.code != but
    )


def check_membership(network: str, sender: Authority | None, receiver: Authority | None) -> None:
    """A network's messages travel only between its members."""
    for side, auth in (("sender", sender), ("receiver", receiver)):
        if auth is None:
            raise Rejection(Reason.UNKNOWN_PEER, f"the {side} is not in the directory")
        if network not in auth.networks:
            raise Rejection(
                Reason.NOT_A_MEMBER,
                f"the {side} {auth.code} is not a member of the {network} network in the directory",
            )


def check_inbound(
    header: Header,
    *,
    local: str,
    peer: str,
    directory: Directory,
    now: datetime,
    max_skew: timedelta,
) -> FormType:
    """What a verified transmission of the family must satisfy before its content is read:
    parties, clock, the liaison-officer role, its item id, no legal basis, its reference."""
    ft = OPERATIONAL_TYPES[header.message_type]
    if header.sender != peer:
        raise Rejection(Reason.SENDER_MISMATCH, "the header's sender is not the TLS peer")
    if header.receiver != local:
        raise Rejection(Reason.WRONG_RECEIVER, f"the transmission is not addressed to {local}")
    if abs(header.created - now) > max_skew:
        raise Rejection(
            Reason.CLOCK_SKEW,
            f"created time is more than {int(max_skew.total_seconds())} s from our clock",
        )
    if header.sender_role != LIAISON_OFFICER:
        raise Rejection(
            Reason.ROLE_NOT_ALLOWED, f"a {ft.name} is sent by the {LIAISON_OFFICER} role"
        )
    if header.item_id is None:
        raise Rejection(Reason.SCHEMA_INVALID, f"a {ft.name} names its item (ItemId)")
    if header.legal_basis is not None or header.case_reference is not None:
        raise Rejection(
            Reason.SCHEMA_INVALID, f"a {ft.name} carries no legal basis and belongs to no case"
        )
    own = ft.name in ITEMS  # a forwarded item keeps its originator's reference
    if not REFERENCE.match(header.reference) or (
        own and not header.reference.startswith(header.sender[:2] + "-")
    ):
        raise Rejection(
            Reason.REFERENCE_INVALID,
            "an item's reference is the sender's letters, the family (EW, LR) and a number",
        )
    return ft


def free_text(form: Mapping[str, Any], prefix: str = "/form") -> Iterator[tuple[str, str]]:
    """(JSON pointer, text) of every free-text value of a message, attachment names
    included: what is checked for personal data."""
    for key, value in form.items():
        pointer = f"{prefix}/{key}"
        if key in NOT_TEXT:
            continue
        if isinstance(value, str):
            yield pointer, value
        elif isinstance(value, Mapping):
            yield from free_text(value, pointer)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    yield f"{pointer}/{i}", item
                elif isinstance(item, Mapping):
                    yield from free_text(item, f"{pointer}/{i}")


def summary_of(message_type: str, form: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """(category or topic, countries) of an item: what the reading API filters on."""
    if message_type == "early-warning":
        countries = form["country"]
        return str(form["category"]), tuple(
            countries if isinstance(countries, list) else [countries]
        )
    return str(form["topic"]), (str(form["countryOfDeployment"]),)


def forwarding_refusal(
    handling: Handling,
    originator: str,
    forwarder: str,
    receiver: str,
    permission: Mapping[str, Any] | None,
    permission_header: Header | None,
    item_id: str,
) -> str | None:
    """Why `forwarder` may not pass the item on to `receiver`, or None: a handling code that
    forbids it without permission, and no permission signed by the originator, addressed to
    the forwarder, for this item, naming the receiver."""
    if not handling.forbids_forwarding():
        return None
    if permission is None or permission_header is None:
        return (
            "the originator's handling code forbids passing this item on without its "
            "permission, and none is attached"
        )
    if permission_header.sender != originator or permission_header.receiver != forwarder:
        return "the permission is not the originator's to the forwarder"
    if permission.get("item") != item_id:
        return "the permission names another item"
    allowed = permission.get("forwardTo", [])
    if receiver not in (allowed if isinstance(allowed, list) else [allowed]):
        return f"the originator's permission does not name {receiver}"
    return None
