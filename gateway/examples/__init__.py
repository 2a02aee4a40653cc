"""The example forms in this folder (used by the demo, the tests and the docs), and the
attachment files their descriptors point to.

Package data beside their loader, so that an installed wheel has them too: one valid JSON
form per form type and variant, invalid/ (one broken form per type and the errors expected),
attachments/ (the files the forms' descriptors name) and folder/ (an XML drop file of the
folder adapter)."""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path
from typing import Any

EXAMPLES = Path(str(resources.files(__name__)))


def load_example(name: str) -> dict[str, Any]:
    """gateway/examples/<name> (with or without .json) as a JSON object."""
    path = EXAMPLES / (name if name.endswith(".json") else f"{name}.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    return data


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
