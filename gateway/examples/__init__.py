"""The example forms in this folder (used by the demo, the tests and the docs), and the
attachment files their descriptors point to.

Package data beside their loader, so that an installed wheel has them too: one valid JSON
form per form type and variant, invalid/ (one broken form per type and the errors expected),
attachments/ (the files the forms' descriptors name) and folder/ (an XML drop file of the
folder adapter)."""

from __future__ import annotations

import base64
import json
import re
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

EXAMPLES = Path(str(resources.files(__name__)))

# The day the example forms are written as of: an application registered a week before,
# a transfer planned two months after. `load_example(name, today=...)` moves every date of
# a form by the distance from this day to `today`, so that a form used on any day keeps
# the same relation to that day (a request made 7 days after registration stays within
# Art. 39(1) of Regulation 2024/1351 however late the demo or the tests run). Dates of
# birth stay: they are the person's, not the case's.
EXAMPLES_DAY = date(2026, 11, 9)

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def load_example(name: str, today: date | None = None) -> dict[str, Any]:
    """gateway/examples/<name> (with or without .json) as a JSON object; with `today`, its
    dates (the string values that are whole ISO days, but dates of birth) moved by
    `today - EXAMPLES_DAY`."""
    path = EXAMPLES / (name if name.endswith(".json") else f"{name}.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    if today is None or today == EXAMPLES_DAY:
        return data
    moved = _moved(data, today - EXAMPLES_DAY)
    assert isinstance(moved, dict)
    return moved


_NOT_MOVED = frozenset({"dateOfBirth"})


def _moved(value: Any, shift: timedelta) -> Any:
    if isinstance(value, dict):
        return {
            key: item if key in _NOT_MOVED else _moved(item, shift) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_moved(item, shift) for item in value]
    if isinstance(value, str) and _ISO_DAY.fullmatch(value):
        return (date.fromisoformat(value) + shift).isoformat()
    return value


def attachments_for(form: dict[str, Any]) -> list[dict[str, str]]:
    """The submission's `attachments` for the files the form describes at its top level,
    read from gateway/examples/attachments/."""
    out = []
    for item in form.get("attachment", []):
        content = (EXAMPLES / "attachments" / item["fileName"]).read_bytes()
        out.append(
            {
                "fileName": item["fileName"],
                "mediaType": item["mediaType"],
                "content": base64.b64encode(content).decode(),
            }
        )
    return out
