"""The folder adapter between two real gateways: a case system that only reads and writes
files sends a take charge request (Art. 29) and receives the reply (Art. 30) with its
acknowledgements and deadlines, every file exactly once, even when the adapter is killed
mid-way; incomplete, malformed and unsafe files never go out."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapters.folder.adapter import FolderAdapter, FolderConfig
from adapters.folder.xml_drop import submission_to_xml
from gateway.examples import attachments_for
from tests.integration.conftest import Harness, erased_information, example
from tests.ledger import LEDGER


def adapter(h: Harness, code: str, root: Path, signed_xml: bool = False) -> FolderAdapter:
    gw = h.net.gateways[code]
    return FolderAdapter(
        FolderConfig(gw.api_url, gw.tokens["case-officer"], root, signed_xml=signed_xml)
    )


def drop(folder: Path, name: str, submission: dict[str, Any]) -> Path:
    """As a careful writer does: a temporary name, then a rename."""
    tmp = folder / f".{name}.tmp"
    tmp.write_text(json.dumps(submission))
    target = folder / name
    os.replace(tmp, target)
    return target


def request(case_number: str) -> dict[str, Any]:
    form = example("take-charge-request.json")
    return {
        "type": "take-charge-request",
        "receiver": "NL-DU",
        "case_number": case_number,
        "form": form,
        "attachments": attachments_for(form),
    }


async def passes(*adapters: FolderAdapter, until: Any, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not until():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the folders did not reach the expected state in time")
        for a in adapters:
            await a.run_once()
        await asyncio.sleep(0.1)


async def test_art29_30_a_request_file_goes_out_and_the_reply_file_comes_back(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    be, nl = adapter(h, "BE-DU", tmp_path / "be"), adapter(h, "NL-DU", tmp_path / "nl")
    try:
        drop(be.folder("outgoing"), "request-0042.json", request("0042"))
        await passes(be, nl, until=lambda: any(nl.folder("incoming").glob("*.json")))
        (incoming,) = nl.folder("incoming").glob("*.json")
        received = json.loads(incoming.read_text())
        assert received["type"] == "take-charge-request"
        assert received["form"]["applicant"] == example("take-charge-request.json")["applicant"]
        result_file = be.folder("sent") / "request-0042.json.result.json"
        await passes(be, until=lambda: json.loads(result_file.read_text())["state"] == "delivered")
        result = json.loads(result_file.read_text())
        assert result["message_id"] == received["message_id"]
        assert result["acknowledgement"]["status"] == "accepted"
        assert {d["rule"] for d in result["deadlines"]} >= {"take_charge_reply"}
        assert not list(be.folder("outgoing").iterdir())

        reply = {
            "type": "take-charge-reply",
            "receiver": "BE-DU",
            "in_reply_to": received["message_id"],
            "form": example("take-charge-reply-acceptance.json"),
        }
        drop(nl.folder("outgoing"), "reply-0042.json", reply)
        await passes(
            nl,
            be,
            until=lambda: any(
                json.loads(p.read_text())["type"] == "take-charge-reply"
                for p in be.folder("incoming").glob("*.json")
            ),
        )
        events = [json.loads(p.read_text())["event"] for p in be.folder("events").iterdir()]
        assert {"submitted", "delivered", "deadline-opened", "received"} <= set(events)
        cursors = [int(p.name.split("-")[0]) for p in be.folder("events").iterdir()]
        assert len(cursors) == len(set(cursors)), "each event written once"
        assert (await h.api("NL-DU").inbox(state="unconsumed"))["items"] == []
    finally:
        await be.close()
        await nl.close()


async def test_incomplete_malformed_and_unsafe_files_never_go_out(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    await h.start("BE-DU")
    be = adapter(h, "BE-DU", tmp_path / "be")
    out = be.folder("outgoing")
    try:
        (out / ".half.json.tmp").write_text('{"type": "take-charge-req')
        growing = out / "growing.json"
        growing.write_text('{"type": "take-charge-request", ')
        await be.run_once()  # first sight: not yet known to be complete
        growing.write_text(json.dumps(request("GROW")))
        await be.run_once()  # changed since: still waiting
        assert growing.exists()
        (out / "broken.json").write_text("{not json")
        missing = request("MISS")
        del missing["form"]["applicant"]["surname"]
        drop(out, "missing-surname.json", missing)
        (out / "spaces in name.json").write_text(json.dumps(request("SPACE")))
        (out / "link.json").symlink_to(tmp_path / "elsewhere.json")
        await be.run_once()
        await be.run_once()
        assert (out / ".half.json.tmp").exists(), "temporary names are left alone"
        assert (be.folder("sent") / "growing.json").exists()
        errors = {p.name: p.read_text() for p in be.folder("error").glob("*.error.txt")}
        assert "not a submission" in errors["broken.json.error.txt"]
        assert "/form/applicant" in errors["missing-surname.json.error.txt"]
        unsafe = [t for t in errors.values() if "unsafe file name" in t]
        assert len(unsafe) == 1 and "spaces in name.json" in unsafe[0]
        assert any("symbolic link" in t for t in errors.values())
        assert not (tmp_path / "elsewhere.json").exists()
        submitted = await h.ctx("BE-DU").store.register.query(event="submitted")
        assert len(submitted) == 1
    finally:
        await be.close()


async def test_art29_a_request_dropped_as_xml_arrives_with_its_form_and_attachment(
    harness: Harness, tmp_path: Path
) -> None:
    """A case system that writes XML: the same request as an XML drop file reaches NL-DU
    with the same form and attachment; an XML file that is not valid goes to error/ with the
    line at fault and is not sent. With --signed-xml the receiving side also gets the
    transmission exactly as BE-DU signed it (Art. 40(9): the proof itself)."""
    h = harness
    await h.start("BE-DU", "NL-DU")
    be = adapter(h, "BE-DU", tmp_path / "be")
    nl = adapter(h, "NL-DU", tmp_path / "nl", signed_xml=True)
    try:
        sent = request("XML-1")
        out = be.folder("outgoing")
        (out / "request-xml-1.xml").write_bytes(submission_to_xml(sent))
        invalid = submission_to_xml(request("XML-2")).replace(
            b"<c:dateOfBirth>1994-03-17<", b"<c:dateOfBirth>17.03.1994<"
        )
        (out / "request-xml-2.xml").write_bytes(invalid)
        os.utime(out / "request-xml-1.xml", (0, 0))  # long untouched: complete
        os.utime(out / "request-xml-2.xml", (0, 0))
        await passes(be, nl, until=lambda: any(nl.folder("incoming").glob("*.json")))
        (incoming,) = nl.folder("incoming").glob("*.json")
        received = json.loads(incoming.read_text())
        assert received["type"] == "take-charge-request"
        assert received["form"] == sent["form"]
        (attachment,) = received["form"]["attachment"]
        fetched = await h.api("NL-DU").attachment(received["message_id"], attachment["fileName"])
        assert base64.b64encode(fetched).decode() == sent["attachments"][0]["content"]
        result = json.loads((be.folder("sent") / "request-xml-1.xml.result.json").read_text())
        assert result["message_id"] == received["message_id"]
        signed = (nl.folder("incoming") / f"{received['message_id']}.xml").read_bytes()
        ours = await h.ctx("BE-DU").store.messages.get(received["message_id"])
        assert ours is not None and signed == ours.signed_xml, "the bytes BE-DU signed"
        explanation = (be.folder("error") / "request-xml-2.xml.error.txt").read_text()
        assert explanation.startswith("line ") and "dateOfBirth" in explanation
        assert "17.03.1994" not in explanation
        assert (be.folder("error") / "request-xml-2.xml").exists()
        submitted = await h.ctx("BE-DU").store.register.query(event="submitted")
        assert len(submitted) == 1, "only the valid file was sent"
    finally:
        await be.close()
        await nl.close()


async def test_art40_8_a_message_erased_before_it_was_taken_is_written_without_its_xml(
    harness: Harness, tmp_path: Path
) -> None:
    """An erasure notice (Art. 40(8)) reached NL-DU before its case system took the data:
    the message is still handed over (its JSON view, without the form), the signed
    transmission is gone and not written, and everything else arrives as signed."""
    h = harness
    await h.start("BE-DU", "NL-DU")
    sent, info, erase = await erased_information(h, "ERASE-XML")
    nl = adapter(h, "NL-DU", tmp_path / "nl", signed_xml=True)
    try:
        result = await nl.run_once()
        incoming = nl.folder("incoming")
        assert result.received == 3  # the request, the erased information, the notice
        assert json.loads((incoming / f"{info['message_id']}.json").read_text())["form"] is None
        assert not (incoming / f"{info['message_id']}.xml").exists()
        for kept in (sent, erase):
            assert (incoming / f"{kept['message_id']}.xml").read_bytes().startswith(b"<")
        assert (await h.api("NL-DU").inbox(state="unconsumed"))["items"] == []
    finally:
        await nl.close()


async def test_a_crash_between_submitting_and_moving_the_file_sends_nothing_twice(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    await h.start("BE-DU")
    be = adapter(h, "BE-DU", tmp_path / "be")
    try:
        drop(be.folder("outgoing"), "r.json", request("CRASH"))
        await be.run_once()
        real_replace = os.replace
        calls = {"n": 0}

        def crash_once(src: Any, dst: Any) -> None:
            if str(dst).endswith("sent/r.json") and calls["n"] == 0:
                calls["n"] += 1
                raise OSError("simulated crash")
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", crash_once)
        with pytest.raises(OSError, match="simulated crash"):
            await be.run_once()
        monkeypatch.setattr(os, "replace", real_replace)
        first = json.loads((be.folder("sent") / "r.json.result.json").read_text())
        assert (be.folder("outgoing") / "r.json").exists(), "the crash left it in outgoing/"
        await be.run_once()  # seen again and resubmitted: the gateway replays the original
        assert sorted(p.name for p in be.folder("sent").iterdir()) == [
            "r.json",
            "r.json.result.json",
        ]
        again = json.loads((be.folder("sent") / "r.json.result.json").read_text())
        assert again["message_id"] == first["message_id"]
        submitted = await h.ctx("BE-DU").store.register.query(event="submitted")
        assert len(submitted) == 1, "the gateway sent it once"
    finally:
        await be.close()


@pytest.mark.fault
async def test_killing_the_adapter_mid_way_loses_and_duplicates_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    await h.start("BE-DU", "NL-DU")
    root = tmp_path / "be"
    gw = h.net.gateways["BE-DU"]
    token = tmp_path / "token"
    token.write_text(gw.tokens["case-officer"])
    count = 20
    (root / "outgoing").mkdir(parents=True)
    for n in range(count):
        drop(root / "outgoing", f"req-{n:03}.json", request(f"KILL{n:03}"))
    argv = [
        sys.executable, "-m", "adapters.folder", "--api-url", gw.api_url,
        "--token-file", str(token), "--root", str(root), "--poll-seconds", "0.05",
    ]  # fmt: skip
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(400):
            done = (
                len(list((root / "sent").glob("*.result.json"))) if (root / "sent").exists() else 0
            )
            if done >= (kills + 1) * count // 4:
                break
            await asyncio.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
        kills += 1
    # The gateways run in this event loop: wait for the adapter without blocking it.
    for _ in range(20):
        if not list((root / "outgoing").glob("*.json")):
            break
        await asyncio.to_thread(
            subprocess.run, [*argv, "--once"], check=True, timeout=60, stdout=subprocess.DEVNULL
        )
    sent = sorted(p.name for p in (root / "sent").glob("req-*.json") if "result" not in p.name)
    results = [json.loads(p.read_text()) for p in (root / "sent").glob("*.result.json")]
    assert len(results) == count == len({r["message_id"] for r in results})
    assert sent == [f"req-{n:03}.json" for n in range(count)], "each file sent exactly once"
    assert not list((root / "error").glob("*")), "nothing refused"
    submitted = await h.ctx("BE-DU").store.register.query(event="submitted", limit=1000)
    assert len(submitted) == count == len({e.message_id for e in submitted})
    for entry in submitted:
        await h.api("BE-DU").wait_for_state(entry.message_id, {"delivered"}, within=30)
    received = await h.ctx("NL-DU").store.register.query(event="received", limit=1000)
    ids = [e.message_id for e in received]
    LEDGER.traffic(count, count - len(set(ids)), len(ids) - len(set(ids)))
    assert len(received) == count == len(set(ids))


async def test_a_200000_deep_json_drop_file_is_refused_and_the_adapter_goes_on(
    harness: Harness, tmp_path: Path
) -> None:
    """The depth limit applies to every JSON body: a drop file nested 200,000 deep stopped
    the adapter (the parser's recursion limit) instead of going to error/."""
    await harness.start("BE-DU")
    be = adapter(harness, "BE-DU", tmp_path / "be")
    out = be.folder("outgoing")
    try:
        (out / "deep.json").write_bytes(b"[" * 200_000 + b"]" * 200_000)
        os.utime(out / "deep.json", (0, 0))  # long untouched: complete
        drop(out, "request-after.json", request("AFTER"))
        os.utime(out / "request-after.json", (0, 0))
        result = await be.run_once()
        assert (result.refused, result.submitted) == (1, 1)
        why = (be.folder("error") / "deep.json.error.txt").read_text()
        assert "nests deeper than" in why
    finally:
        await be.close()
