"""The catalogue of standard forms: what each one is, where its schema lives, who may send it
and which request it answers. Forms differ in data, never in code paths."""

from __future__ import annotations

from dataclasses import dataclass

FORMS_NS_PREFIX = "urn:eu:dublin:forms:"


@dataclass(frozen=True)
class FormType:
    name: str
    """Public name used in the envelope, the API and file names, e.g. ``take-charge-request``."""
    type_digit: int
    """The type digit of the reference number (1560/2003 Art. 20)."""
    root: str
    """Local name of the form's root element."""
    article: str
    sender_role: str
    answers: str | None = None
    """For a reply: the request type it answers (the reply carries the request's reference)."""

    @property
    def namespace(self) -> str:
        return f"{FORMS_NS_PREFIX}{self.name}:1"

    @property
    def schema_file(self) -> str:
        return f"{self.name}.xsd"

    @property
    def is_reply(self) -> bool:
        return self.answers is not None


FORM_TYPES: dict[str, FormType] = {
    ft.name: ft
    for ft in (
        FormType("take-charge-request", 1, "TakeChargeRequest", "Art. 29", "case-officer"),
        FormType(
            "take-charge-reply",
            1,
            "TakeChargeReply",
            "Art. 30",
            "case-officer",
            answers="take-charge-request",
        ),
    )
}


class UnknownFormType(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown form type {name!r}; known: {', '.join(sorted(FORM_TYPES))}")
        self.name = name


def form_type(name: str) -> FormType:
    try:
        return FORM_TYPES[name]
    except KeyError:
        raise UnknownFormType(name) from None


def form_type_by_namespace(namespace: str) -> FormType | None:
    for ft in FORM_TYPES.values():
        if ft.namespace == namespace:
            return ft
    return None


def reply_types_for(request: str) -> tuple[str, ...]:
    return tuple(ft.name for ft in FORM_TYPES.values() if ft.answers == request)
