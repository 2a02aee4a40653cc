"""The example forms under examples/ (used by the demo, the tests and the docs), and the
attachment files their descriptors point to."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> dict[str, Any]:
    """examples/<name> (with or without .json) as a JSON object."""
    path = EXAMPLES / (name if name.endswith(".json") else f"{name}.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    return data


def attachments_for(form: dict[str, Any]) -> list[dict[str, str]]:
    """The submission's `attachments` for the files the form describes at its top level,
    read from examples/attachments/."""
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
