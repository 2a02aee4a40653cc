"""The catalogue of standard forms: what each one is, where its schema lives, who may send it
and which request it answers. Forms differ in data, never in code paths."""

from __future__ import annotations

from dataclasses import dataclass

FORMS_NS_PREFIX = "urn:eu:dublin:forms:"


@dataclass(frozen=True)
class FormType:
    name: str
    """Public name used in the envelope, the API and file names, e.g. ``take-charge-request``."""
    type_digit: int | None
    """The type digit of the reference number (1560/2003 Art. 20); None for notices, which
    carry the reference of the case they belong to."""
    root: str
    """Local name of the form's root element."""
    article: str
    sender_role: str
    answers: str | None = None
    """For a reply: the request type it answers (the reply carries the request's reference)."""
    opens: bool = False
    """Whether this form opens a conversation (a request or a notification)."""
    targets_message: bool = False
    """Whether the form concerns one earlier message it names in InReplyTo without answering
    it (rectification and erasure notices, Art. 40(8))."""
    outcome: str | None = None
    """How the form's outcome is read for the conversation: "choice" (the top-level element
    chosen, e.g. acceptance/refusal) or a top-level field name (e.g. "kind")."""
    network: str = "dublin"
    """The network whose members exchange it (gateway.core.operational for the others)."""

    @property
    def namespace(self) -> str:
        return f"{FORMS_NS_PREFIX}{self.name}:1"

    @property
    def schema_file(self) -> str:
        return f"{self.name}.xsd"

    @property
    def is_reply(self) -> bool:
        return self.answers is not None


def _forms(*types: FormType) -> dict[str, FormType]:
    return {ft.name: ft for ft in types}


FORM_TYPES: dict[str, FormType] = _forms(
    FormType("take-charge-request", 1, "TakeChargeRequest", "Art. 29", "case-officer", opens=True),
    FormType(
        "take-charge-reply",
        1,
        "TakeChargeReply",
        "Art. 30",
        "case-officer",
        answers="take-charge-request",
        outcome="choice",
    ),
    FormType(
        "humanitarian-request", 1, "HumanitarianRequest", "Art. 25(2)", "case-officer", opens=True
    ),
    FormType(
        "humanitarian-reply",
        1,
        "HumanitarianReply",
        "Art. 25(2)",
        "case-officer",
        answers="humanitarian-request",
        outcome="choice",
    ),
    FormType(
        "take-back-notification",
        2,
        "TakeBackNotification",
        "Art. 31(1)-(2)",
        "case-officer",
        opens=True,
    ),
    FormType(
        "take-back-confirmation",
        2,
        "TakeBackConfirmation",
        "Art. 31(3)",
        "case-officer",
        answers="take-back-notification",
        outcome="choice",
    ),
    FormType(
        "take-back-request",
        2,
        "TakeBackRequest",
        "604/2013 Art. 23-24",
        "case-officer",
        opens=True,
    ),
    FormType(
        "take-back-reply",
        2,
        "TakeBackReply",
        "604/2013 Art. 25",
        "case-officer",
        answers="take-back-request",
        outcome="choice",
    ),
    FormType(
        "reexamination-request",
        None,
        "ReexaminationRequest",
        "2025/2055 Art. 9(2); 1560/2003 Art. 5(2)",
        "case-officer",
    ),
    FormType(
        "reexamination-reply",
        None,
        "ReexaminationReply",
        "2025/2055 Art. 9(2); 1560/2003 Art. 5(2)",
        "case-officer",
        answers="reexamination-request",
        outcome="choice",
    ),
    FormType(
        "reconsideration-request",
        None,
        "ReconsiderationRequest",
        "2025/2055 Art. 15(3)-(4)",
        "case-officer",
    ),
    FormType(
        "reconsideration-reply",
        None,
        "ReconsiderationReply",
        "2025/2055 Art. 15(3)-(4)",
        "case-officer",
        answers="reconsideration-request",
        outcome="choice",
    ),
    FormType("info-request", 3, "InformationRequest", "Art. 40(1)-(4)", "case-officer", opens=True),
    FormType(
        "info-reply",
        3,
        "InformationReply",
        "Art. 40(5)",
        "case-officer",
        answers="info-request",
        outcome="choice",
    ),
    FormType("dependants-request", 4, "DependantsRequest", "Art. 24", "case-officer", opens=True),
    FormType(
        "dependants-reply",
        4,
        "DependantsReply",
        "Art. 24",
        "case-officer",
        answers="dependants-request",
        outcome="choice",
    ),
    FormType(
        "minor-family-request", 5, "MinorFamilyRequest", "Art. 15", "case-officer", opens=True
    ),
    FormType(
        "minor-family-reply",
        5,
        "MinorFamilyReply",
        "Art. 15",
        "case-officer",
        answers="minor-family-request",
        outcome="choice",
    ),
    FormType("transfer-information", 6, "TransferInformation", "Art. 37", "case-officer"),
    FormType("security-information", 6, "SecurityInformation", "Art. 38", "case-officer"),
    FormType("health-certificate", 7, "HealthCertificate", "Art. 39", "health-practitioner"),
    FormType(
        "group-transfer-notice",
        6,
        "GroupTransferNotice",
        "2025/2055 Art. 26(2)",
        "case-officer",
        opens=True,
    ),
    FormType(
        "group-transfer-reply",
        6,
        "GroupTransferReply",
        "2025/2055 Art. 26(2)",
        "case-officer",
        answers="group-transfer-notice",
        outcome="choice",
    ),
    FormType(
        "transfer-notice", None, "TransferNotice", "Art. 32, 35", "case-officer", outcome="kind"
    ),
    FormType(
        "transfer-reply",
        None,
        "TransferReply",
        "2025/2055 Art. 25(5), 26(3)",
        "case-officer",
        answers="transfer-notice",
        outcome="choice",
    ),
    FormType(
        "responsibility-notice",
        None,
        "ResponsibilityNotice",
        "Art. 27, 35(2)",
        "case-officer",
        outcome="ground",
    ),
    FormType(
        "rectification-notice",
        None,
        "RectificationNotice",
        "Art. 40(8)",
        "case-officer",
        targets_message=True,
    ),
    FormType(
        "erasure-notice", None, "ErasureNotice", "Art. 40(8)", "case-officer", targets_message=True
    ),
)


class UnknownFormType(ValueError):
    def __init__(self, name: str) -> None:
        # The name is not quoted: what a caller submitted is never echoed.
        super().__init__(f"unknown form type; known: {', '.join(sorted(FORM_TYPES))}")
        self.name = name


def form_type(name: str) -> FormType:
    try:
        return FORM_TYPES[name]
    except KeyError:
        raise UnknownFormType(name) from None


OPERATIONAL_TYPES: dict[str, FormType] = _forms(
    FormType(
        "early-warning",
        None,
        "EarlyWarning",
        "Council Decision 2005/267/EC",
        "liaison-officer",
        network="iconet",
    ),
    FormType(
        "liaison-report",
        None,
        "LiaisonReport",
        "Regulation (EU) 2019/1240",
        "liaison-officer",
        network="ilo-network",
    ),
    FormType(
        "item-withdrawal", None, "ItemWithdrawal", "", "liaison-officer", network="operational"
    ),
    FormType(
        "item-permission", None, "ItemPermission", "", "liaison-officer", network="operational"
    ),
    FormType("forwarded-item", None, "ForwardedItem", "", "liaison-officer", network="operational"),
)
"""The operational family: messages with no legal basis, no case and no personal data,
distributed to the members of a network (gateway.core.operational). `network`
"operational" marks the lifecycle messages, which travel in the network of the item they
name."""

ALL_TYPES: dict[str, FormType] = FORM_TYPES | OPERATIONAL_TYPES
"""Every message type the envelope may carry."""


def form_type_by_namespace(namespace: str) -> FormType | None:
    for ft in ALL_TYPES.values():
        if ft.namespace == namespace:
            return ft
    return None
