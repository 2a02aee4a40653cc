"""The demo's scene of the operational family (ICONET, Council Decision 2005/267/EC): BE-DU's
liaison officer broadcasts an early warning to the iconet network, NL-DU and GR-DU receive
it with its handling codes; an early warning carrying a passport number is refused naming
the field; the network operator orders the item deleted, and every gateway applies the order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from gateway.client import ApiError, GatewayClient
from gateway.examples import load_example
from gateway.network import LocalNetwork
from gateway.pki.deletion_orders import sign_deletion_order
from gateway.service.trust import load_signer_files

Api = Callable[[str, str], GatewayClient]


class SceneError(RuntimeError):
    """The scene did not go as the gateways promise."""


async def _received(client: GatewayClient, item_id: str) -> dict[str, Any]:
    for _ in range(400):
        try:
            return await client.item(item_id)
        except ApiError as exc:
            if exc.status != 404:
                raise
        await asyncio.sleep(0.05)
    raise SceneError(f"item {item_id} never arrived")


async def operational_scene(network: LocalNetwork, api: Api, say: Callable[[str], None]) -> str:
    """Run the scene; the item id of the early warning."""
    warning = load_example("early-warning", today=date.today())
    sent = await api("BE-DU", "liaison-officer").distribute("early-warning", warning)
    receivers = ", ".join(t["receiver"] for t in sent["transmissions"])
    say(
        f"[BE-DU -> iconet] early warning {sent['reference']} (item {sent['item_id'][:8]}...): "
        f"one signed transmission each to {receivers}"
    )
    for code in ("NL-DU", "GR-DU"):
        item = await _received(api(code, "liaison-officer"), sent["item_id"])
        codes = [k for k, v in item["handling"].items() if v is True]
        say(
            f"[{code}] early warning {item['reference']} from {item['originator']}: "
            f"{item['category']}, {', '.join(item['countries'])}; handling codes: "
            f"{', '.join(codes) or 'none'}"
        )
    leaked = dict(warning, summary="Fictitious: the organiser travels on passport P1234567.")
    try:
        await api("BE-DU", "liaison-officer").distribute("early-warning", leaked)
    except ApiError as exc:
        say(
            f"[BE-DU] an early warning with a passport number is refused: {exc.status} "
            f"{exc.problem.get('rule')} at {exc.problem.get('field')} (nothing was sent)"
        )
    else:
        raise SceneError("an early warning with personal data was accepted")
    pki = network.pki
    publisher = load_signer_files(pki.publisher_cert, pki.publisher_key)
    order = sign_deletion_order(
        [sent["item_id"]],
        "Fictitious: the operator finds the warning breaches the rules.",
        publisher,
        datetime.now(UTC),
    )
    say("[operator] deletion order of the early warning, signed with the directory publisher's key")
    for code in ("BE-DU", "NL-DU", "GR-DU"):
        applied = await api(code, "administrator").apply_deletion_order(order)
        say(
            f"[{code}] deletion order applied: {len(applied['items_held'])} item deleted, "
            f"{applied['payloads_erased']} payload(s) erased, recorded in the register"
        )
    return str(sent["item_id"])
