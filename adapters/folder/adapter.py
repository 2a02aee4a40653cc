"""The folder adapter: a national case system that can only read and write files exchanges
standard forms through folders.

    ROOT/outgoing/   the case system drops submissions here: JSON, as POST /api/v1/messages,
                     or XML (<Submission> of gateway/schemas/folder-submission.xsd;
                     xml_drop.py)
    ROOT/sent/       each submitted file, with <name>.result.json: reference, message id,
                     then the acknowledgement and the deadlines it started
    ROOT/error/      refused files, with <name>.error.txt saying why and what to fix
    ROOT/incoming/   received messages, <message id>.json (form included), and with
                     signed_xml <message id>.xml: the transmission exactly as signed
    ROOT/events/     the events feed, <cursor>-<event>.json
    ROOT/.state/     the adapter's own bookkeeping

Exactly once, across crashes: a submission carries an Idempotency-Key derived from the
file's name and content, so a crash between submitting and moving the file resubmits
harmlessly (the gateway answers with the original message); a received message is written
(atomically) before it is consumed at the gateway, and an event before the cursor moves, so
a crash in between writes the same file again and nothing is lost or doubled. Files are
taken only once they are complete (unchanged over two passes, or untouched for a few
seconds; temporary names ignored), and
no name from outside is ever used as a path unless it is plainly safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from adapters.folder.xml_drop import DropFileError, submission_from_xml
from gateway.api.bodies import MAX_JSON_DEPTH
from gateway.client import ApiError, GatewayClient
from gateway.pki.directory_file import atomic_write
from gateway.waits import wait_set

log = structlog.get_logger("folder-adapter")

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.(json|xml)$")
MESSAGE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
EVENT_NAME = re.compile(r"^[a-z][a-z-]{0,40}$")
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".swp")
FINAL_STATES = frozenset({"delivered", "refused", "undeliverable"})
MAX_FILE_BYTES = 12 * 1024 * 1024
FOLDERS = ("outgoing", "sent", "error", "incoming", "events", ".state")


@dataclass(frozen=True)
class FolderConfig:
    api_url: str
    token: str
    root: Path
    role: str = "case-officer"
    poll_seconds: float = 1.0
    settle_seconds: float = 2.0
    """A file untouched this long is complete even if this run has not seen it before."""
    signed_xml: bool = False
    """Also write each received transmission as signed (incoming/<message id>.xml)."""


@dataclass
class PassResult:
    submitted: int = 0
    refused: int = 0
    received: int = 0
    events: int = 0
    updated: int = 0


@dataclass
class FolderAdapter:
    config: FolderConfig
    client: GatewayClient = field(init=False)
    _seen: dict[str, tuple[int, int]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.client = GatewayClient(self.config.api_url, self.config.token)
        # Received forms are personal data: folders this adapter creates are its user's
        # alone, whatever the umask (a root others may write in would let them swap a
        # subfolder for one they can read). Existing folders are the case system's to set.
        for folder in (self.config.root, *(self.config.root / name for name in FOLDERS)):
            if not folder.is_dir():
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(folder, 0o700)

    def folder(self, name: str) -> Path:
        return self.config.root / name

    async def close(self) -> None:
        await self.client.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until `stop`; a failing gateway is retried at the next pass."""
        log.info("folder-adapter-started", root=str(self.config.root), role=self.config.role)
        while not stop.is_set():
            try:
                await self.run_once()
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("pass-failed", error=str(exc)[:300])
            await wait_set(stop, self.config.poll_seconds)
        log.info("folder-adapter-stopped")

    async def run_once(self) -> PassResult:
        result = PassResult()
        await self._outgoing(result)
        await self._update_results(result)
        await self._incoming(result)
        await self._events(result)
        return result

    # -- outgoing ----------------------------------------------------------------------------

    async def _outgoing(self, result: PassResult) -> None:
        outgoing = self.folder("outgoing")
        present: set[str] = set()
        for entry in sorted(os.scandir(outgoing), key=lambda e: e.name):
            name = entry.name
            if name.startswith(".") or name.endswith(IGNORED_SUFFIXES):
                continue
            present.add(name)
            if entry.is_symlink():
                self._refuse(entry, "a symbolic link: write the file itself into outgoing/")
                result.refused += 1
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            if not SAFE_NAME.match(name):
                self._refuse(
                    entry,
                    "unsafe file name: use letters, digits, '.', '_' and '-' only, start with a "
                    "letter or digit, end in .json or .xml, at most 125 characters",
                )
                result.refused += 1
                continue
            stat = entry.stat(follow_symlinks=False)
            observed = (stat.st_size, stat.st_mtime_ns)
            settled = time.time() - stat.st_mtime >= self.config.settle_seconds
            if self._seen.get(name) != observed and not settled:
                # Complete once unchanged over two passes, or untouched for settle_seconds
                # (what a one-shot run from cron relies on).
                self._seen[name] = observed
                continue
            if await self._submit(Path(entry.path), result):
                self._seen.pop(name, None)
        for name in list(self._seen):
            if name not in present:
                del self._seen[name]

    async def _submit(self, path: Path, result: PassResult) -> bool:
        """Submit one complete file; True when it has left outgoing/ (sent or refused)."""
        data = await asyncio.to_thread(path.read_bytes)
        if len(data) > MAX_FILE_BYTES:
            self._move_to_error(path, f"the file is larger than {MAX_FILE_BYTES} bytes")
            result.refused += 1
            return True
        try:
            submission = _read_submission(path.suffix, data)
        except DropFileError as exc:
            self._move_to_error(path, str(exc))
            result.refused += 1
            return True
        key = "folder:" + hashlib.sha256(path.name.encode() + b"\0" + data).hexdigest()
        fields = {k: submission[k] for k in submission if k not in ("type", "receiver", "form")}
        try:
            answer = await self.client.submit(
                submission["type"],
                submission["receiver"],
                submission["form"],
                idempotency_key=key,
                **_client_fields(fields),
            )
        except ApiError as exc:
            if exc.status in (429, 503) or exc.status >= 500:
                log.warning("submit-later", file=path.name, status=exc.status)
                return False
            self._move_to_error(path, _explain(exc))
            result.refused += 1
            return True
        except TypeError as exc:
            self._move_to_error(path, f"unknown field in the submission: {exc}")
            result.refused += 1
            return True
        target = self.folder("sent") / path.name
        if _result_of(target).get("message_id") != answer["message_id"]:
            # Not the same submission finishing after a crash: never overwrite another one.
            target = _free_name(self.folder("sent"), path.name)
        record = {
            "file": target.name,
            "message_id": answer["message_id"],
            "reference": answer["reference"],
            "digest": answer["digest"],
            "state": answer["state"],
            "warnings": answer.get("warnings", []),
            "submitted_at": datetime.now(UTC).isoformat(),
        }
        _write_json(target.with_name(target.name + ".result.json"), record)
        os.replace(path, target)
        result.submitted += 1
        log.info("submitted", file=path.name, message_id=answer["message_id"])
        return True

    async def _update_results(self, result: PassResult) -> None:
        """Bring each sent file's result up to date until its state is final."""
        for path in sorted(self.folder("sent").glob("*.result.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if record.get("state") in FINAL_STATES:
                continue
            view = await self.client.message(record["message_id"])
            if view["state"] == record.get("state") and "acknowledgement" in record:
                continue
            record.update(
                state=view["state"],
                acknowledgement=view.get("acknowledgement"),
                deadlines=view.get("deadlines", []),
                error=view.get("error"),
            )
            _write_json(path, record)
            result.updated += 1
            log.info("result-updated", file=path.name, state=view["state"])

    def _refuse(self, entry: os.DirEntry[str], why: str) -> None:
        """Move a file we will not submit (by its entry, never by a constructed path)."""
        digest = hashlib.sha256(entry.name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        target = _free_name(self.folder("error"), f"refused-{digest}.json")
        os.replace(entry.path, target)
        _write_text(
            target.with_name(target.name + ".error.txt"),
            f"original name: {entry.name!r}\nrefused: {why}\n",
        )
        log.warning("refused", file=target.name, reason=why)

    def _move_to_error(self, path: Path, why: str) -> None:
        target = _free_name(self.folder("error"), path.name)
        os.replace(path, target)
        _write_text(target.with_name(target.name + ".error.txt"), why + "\n")
        log.warning("refused", file=path.name, reason=why[:200])

    # -- incoming ----------------------------------------------------------------------------

    async def _incoming(self, result: PassResult) -> None:
        cursor = "0"
        while True:
            page = await self.client.inbox(cursor, 50, state="unconsumed")
            for message in page["items"]:
                message_id = str(message["message_id"])
                if not MESSAGE_ID.match(message_id):
                    log.error("unexpected-message-id", message_id=message_id[:64])
                    continue
                target = self.folder("incoming") / f"{message_id}.json"
                if self.config.signed_xml:
                    await self._write_transmission(message_id)
                _write_json(target, message)  # first the files...
                await self.client.consume(message_id)  # ...then the gateway forgets it
                result.received += 1
                log.info("received", message_id=message_id, type=message.get("type"))
            if not page["items"] or page["next_cursor"] == cursor:
                return
            cursor = str(page["next_cursor"])

    async def _write_transmission(self, message_id: str) -> None:
        """incoming/<message id>.xml: the signed transmission (form, attachments, header and
        the sender's XML-DSig), for case systems that read XML or keep the proof itself.
        Written before the JSON file, which says the message is complete."""
        try:
            signed = await self.client.transmission(message_id)
        except ApiError as exc:
            if exc.status != 410:
                raise
            # erased (Art. 40(8) notice) before it was taken: only the JSON view is left
            log.warning("transmission-erased", message_id=message_id)
            return
        atomic_write(self.folder("incoming") / f"{message_id}.xml", signed, mode=0o600)

    async def _events(self, result: PassResult) -> None:
        cursor_file = self.folder(".state") / "events.cursor"
        cursor = cursor_file.read_text().strip() if cursor_file.exists() else "0"
        while True:
            page = await self.client.events(cursor, 100)
            for event in page["items"]:
                position, kind = str(event["cursor"]), str(event["event"])
                if not position.isdigit() or not EVENT_NAME.match(kind):
                    continue
                _write_json(self.folder("events") / f"{int(position):012d}-{kind}.json", event)
                result.events += 1
            next_cursor = str(page["next_cursor"])
            if next_cursor != cursor:
                atomic_write(cursor_file, next_cursor.encode() + b"\n", mode=0o600)
            if next_cursor == cursor or not page["items"]:
                return
            cursor = next_cursor


CLIENT_FIELDS = {
    "case_number",
    "in_reply_to",
    "urgent",
    "eurodac_reference",
    "case",
    "attachments",
}


def _read_submission(suffix: str, data: bytes) -> dict[str, Any]:
    """The submission a dropped file holds (JSON or XML), or DropFileError saying why not."""
    if suffix == ".xml":
        return submission_from_xml(data, MAX_FILE_BYTES)
    try:
        submission = json.loads(data)
        if not isinstance(submission, dict):
            raise ValueError("the top level must be a JSON object")
        for key in ("type", "receiver", "form"):
            if key not in submission:
                raise ValueError(f"the field '{key}' is missing")
    except (ValueError, UnicodeDecodeError) as exc:
        raise DropFileError(f"not a submission: {exc}") from exc
    except RecursionError as exc:  # the parser's own limit, far above the gateway's
        raise DropFileError(
            f"not a submission: the JSON nests deeper than {MAX_JSON_DEPTH} levels"
        ) from exc
    return submission


def _client_fields(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - CLIENT_FIELDS
    if unknown:
        raise TypeError(", ".join(sorted(unknown)))
    return fields


def _explain(exc: ApiError) -> str:
    problem = exc.problem
    lines = [f"the gateway refused this submission (HTTP {exc.status})"]
    if problem.get("detail"):
        lines.append(f"why: {problem['detail']}")
    if problem.get("field"):
        lines.append(f"field at fault: {problem['field']}")
    if problem.get("rule"):
        lines.append(f"rule: {problem['rule']}")
    lines.append(
        "fix the file and drop it into outgoing/ again (the gateway's gateway/examples/ folder "
        "has a valid file for every form)"
    )
    return "\n".join(lines)


def _result_of(sent_file: Path) -> dict[str, Any]:
    try:
        data = json.loads(sent_file.with_name(sent_file.name + ".result.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/<stem>-<n><suffix>` if taken: nothing is overwritten."""
    target = folder / name
    stem, suffix = target.stem, target.suffix
    n = 1
    while target.exists() or target.with_name(target.name + ".result.json").exists():
        target = folder / f"{stem}-{n}{suffix}"
        n += 1
    resolved = target.resolve()
    if resolved.parent != folder.resolve():
        raise OSError(f"refusing to write outside {folder}")
    return target


def _write_json(path: Path, data: Any) -> None:
    _write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def _write_text(path: Path, text: str) -> None:
    """Written to a temporary name, synced and renamed: a reader sees all or nothing."""
    atomic_write(path, text.encode("utf-8"), mode=0o600)
