"""Named users of the internal API (issue 17, item 5), with real gateways: a user added with
`gateway users add` acts under its own name, which the register records (Art. 40(9): who
submitted, who took a message over, which administrator reloaded); a removed user is
refused within the reload interval; the deprecated `[api.tokens]` and tokens from the
environment still let a case system in."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import structlog

from gateway.cli import main
from gateway.client import ApiError, GatewayClient
from gateway.core.register import Event
from gateway.network import write_toml
from tests.integration.conftest import Harness, send_request

RELOAD_SECONDS = 0.5
"""api.tokens_reload_seconds of the harness's gateways (gateway/network.py)."""


def _tokens_file(h: Harness, code: str) -> Path:
    return h.net.gateways[code].config.parent / "tokens.json"


def _add_user(
    h: Harness, code: str, name: str, roles: list[str], capsys: pytest.CaptureFixture[str]
) -> str:
    """`gateway users add`; returns the token it prints (once)."""
    capsys.readouterr()
    args = ["users", "add", name, "--tokens-file", str(_tokens_file(h, code))]
    for role in roles:
        args += ["--role", role]
    assert main(args) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("gwt_") and token not in out.err
    assert token not in _tokens_file(h, code).read_text()
    return token


async def _status(client: GatewayClient) -> int:
    try:
        await client.health()
    except ApiError as exc:
        return exc.status
    return 200


async def _until(client: GatewayClient, status: int, within: float) -> float:
    """Seconds until a request with the client's token is answered `status` (bounded)."""
    start = time.monotonic()
    for _ in range(int(within / 0.05) + 1):
        if await _status(client) == status:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"not answered {status} within {within} s")


async def _entries(h: Harness, code: str, event: Event) -> list[Any]:
    entries = await h.ctx(code).store.register.query(event=event.value, limit=10_000)
    return list(entries)


async def test_art40_9_a_user_added_with_the_cli_submits_and_the_register_names_it(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    token = _add_user(h, "BE-DU", "alice", ["case-officer"], capsys)
    alice = GatewayClient(h.net.gateways["BE-DU"].api_url, token)
    h.clients.append(alice)
    await _until(alice, 200, RELOAD_SECONDS + 5)
    sent = await send_request(alice, case_number="USERS-1")
    (submitted,) = [
        e for e in await _entries(h, "BE-DU", Event.SUBMITTED) if e.message_id == sent["message_id"]
    ]
    assert submitted.principal == "alice"

    bob_token = _add_user(h, "NL-DU", "bob", ["case-officer", "auditor"], capsys)
    bob = GatewayClient(h.net.gateways["NL-DU"].api_url, bob_token)
    h.clients.append(bob)
    await _until(bob, 200, RELOAD_SECONDS + 5)
    await bob.wait_for_inbox(lambda m: m["message_id"] == sent["message_id"], within=20)
    await bob.consume(sent["message_id"])
    (consumed,) = await _entries(h, "NL-DU", Event.CONSUMED)
    assert consumed.principal == "bob" and consumed.details["role"] == "case-officer"
    integrity = await bob.register_integrity()  # bob is also an auditor
    assert integrity["intact"] is True, integrity

    assert main(["users", "list", "--tokens-file", str(_tokens_file(h, "NL-DU"))]) == 0
    listed = capsys.readouterr().out
    assert "bob\tcase-officer,auditor" in listed and bob_token not in listed


async def test_a_removed_user_is_refused_within_the_reload_interval(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    h = harness
    await h.start("BE-DU")
    token = _add_user(h, "BE-DU", "carol", ["auditor"], capsys)
    carol = GatewayClient(h.net.gateways["BE-DU"].api_url, token)
    h.clients.append(carol)
    await _until(carol, 200, RELOAD_SECONDS + 5)
    removed = ["users", "remove", "carol", "--tokens-file", str(_tokens_file(h, "BE-DU"))]
    assert main(removed) == 0
    assert _tokens_file(h, "BE-DU").stat().st_mode & 0o777 == 0o600
    waited = await _until(carol, 401, RELOAD_SECONDS + 5)
    assert waited <= RELOAD_SECONDS + 1.0
    assert await _status(h.api("BE-DU", "auditor")) == 200  # the others stay
    assert main(removed) == 2  # no such user now


async def test_art40_9_an_administrators_reload_names_the_principal(harness: Harness) -> None:
    h = harness
    await h.start("BE-DU")
    await h.api("BE-DU", "administrator").reload_trust()
    entry = (await _entries(h, "BE-DU", Event.TRUST_RELOADED))[-1]
    assert entry.principal == "administrator" and entry.details["actor"] == "administrator"
    await h.api("BE-DU", "administrator").advance_clock(60)
    moved = (await _entries(h, "BE-DU", Event.ADMIN_ACTION))[-1]
    assert moved.principal == "administrator"
    assert (await h.api("BE-DU", "auditor").register_integrity())["intact"] is True


def _use_role_tokens(h: Harness, code: str) -> None:
    """Rewrite the gateway's configuration to the deprecated `[api.tokens]` (no tokens file)."""
    path = h.net.gateways[code].config
    raw = tomllib.loads(path.read_text())
    tables = {"": {k: v for k, v in raw.items() if not isinstance(v, dict)}}
    tables |= {k: v for k, v in raw.items() if isinstance(v, dict)}
    del tables["api"]["tokens_file"]
    tables["api.tokens"] = dict(h.net.gateways[code].tokens)
    write_toml(path, tables)


async def test_the_deprecated_api_tokens_table_still_works_and_warns(harness: Harness) -> None:
    h = harness
    _use_role_tokens(h, "BE-DU")
    with structlog.testing.capture_logs() as logs:
        await h.start("BE-DU")
    warnings = [e for e in logs if e.get("setting") == "api.tokens"]
    assert warnings and warnings[0]["log_level"] == "warning"
    assert "deprecated" in warnings[0]["event"]
    tokens = h.net.gateways["BE-DU"].tokens
    assert not any(t in repr(logs) for t in tokens.values())
    sent = await send_request(h.api("BE-DU"), case_number="USERS-2")
    entry = (await _entries(h, "BE-DU", Event.SUBMITTED))[-1]
    assert entry.message_id == sent["message_id"] and entry.principal == "case-officer"


async def test_a_principal_from_the_environment_submits_under_its_name(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    token = "container-secret-" + "k" * 32
    monkeypatch.setenv("GATEWAY_API_TOKEN_CASE_SYSTEM", f"case-officer:{token}")
    await h.start("BE-DU")
    client = GatewayClient(h.net.gateways["BE-DU"].api_url, token)
    h.clients.append(client)
    sent = await send_request(client, case_number="USERS-3")
    entry = (await _entries(h, "BE-DU", Event.SUBMITTED))[-1]
    assert entry.message_id == sent["message_id"] and entry.principal == "case-system"
    async with GatewayClient(h.net.gateways["BE-DU"].api_url, token[:-1]) as wrong:
        assert await _status(wrong) == 401


async def test_art40_9_version_1_and_2_entries_verify_together_and_a_forged_principal_breaks(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """The register holds entries without a principal (start-up, checkpoints: canonical form
    version 1, as every entry written before named users) and with one (version 2);
    `gateway register verify` checks both, and changing or erasing a principal is an edit."""
    h = harness
    await h.start("BE-DU")
    if h.ctx("BE-DU").store.postgres:
        pytest.skip("the forgery edits the SQLite file")
    sent = await send_request(h.api("BE-DU"), case_number="USERS-4")
    await h.stop("BE-DU")
    config = str(h.net.gateways["BE-DU"].config)
    capsys.readouterr()
    verify = ["register", "verify", "--config", config]
    assert await asyncio.to_thread(main, verify) == 0, capsys.readouterr()
    db = sqlite3.connect(h.net.gateways["BE-DU"].data_dir / "gateway.db")
    try:
        rows = db.execute("SELECT sequence, principal FROM register ORDER BY sequence").fetchall()
        assert rows[0][1] is None and ("case-officer" in {p for _, p in rows})
        (seq,) = db.execute(
            "SELECT sequence FROM register WHERE message_id = ? AND event = 'submitted'",
            (sent["message_id"],),
        ).fetchone()
        for forged in ("mallory", None):
            with db:
                db.execute("UPDATE register SET principal = ? WHERE sequence = ?", (forged, seq))
            capsys.readouterr()
            assert await asyncio.to_thread(main, verify) == 1
            assert f"sequence {seq}:" in capsys.readouterr().out
    finally:
        db.close()
