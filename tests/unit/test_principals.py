"""Named users of the internal API (issue 17, item 5): the tokens file keeps hashes only,
must be private to its owner, and says what is wrong with it without quoting a token; the
register's canonical form version 2 records who acted and leaves version 1 entries as they
were."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from gateway.config import ConfigError, parse_config
from gateway.core.principals import (
    MIN_CLEAR_TOKEN,
    TOKEN_PREFIX,
    TOKENS_FORMAT,
    Principal,
    TokensError,
    find,
    from_environment,
    hash_token,
    new_token,
    parse_document,
)
from gateway.core.register import GENESIS_HASH, RegisterChainError, next_entry, verify_chain
from gateway.service.principals import Principals, read_tokens_file, write_tokens_file

LOG: structlog.stdlib.BoundLogger = structlog.get_logger()


def _file(tmp_path: Path, *principals: Principal, mode: int = 0o600) -> Path:
    path = tmp_path / "tokens.json"
    write_tokens_file(path, principals)
    path.chmod(mode)
    return path


def test_a_new_token_has_256_random_bits_and_only_its_hash_is_written(tmp_path: Path) -> None:
    token = new_token()
    assert token.startswith(TOKEN_PREFIX) and len(token) >= len(TOKEN_PREFIX) + 43
    assert new_token() != token
    path = _file(tmp_path, Principal("alice", ("case-officer",), hash_token(token), "file"))
    text = path.read_text()
    assert token not in text and token[len(TOKEN_PREFIX) :] not in text
    assert hash_token(token) in text
    assert path.stat().st_mode & 0o777 == 0o600
    (alice,) = read_tokens_file(path)
    assert find([alice], token) == alice
    assert find([alice], token + "x") is None


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_tokens_file_others_can_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = _file(tmp_path, mode=mode)
    with pytest.raises(TokensError, match="chmod 600"):
        read_tokens_file(path)


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ("not json", "not valid JSON"),
        ('{"format": "other/1", "principals": []}', "not a tokens file"),
        (json.dumps({"format": TOKENS_FORMAT, "principals": {}}), "exactly the keys"),
        (
            json.dumps({"format": TOKENS_FORMAT, "principals": [{"name": "a", "roles": []}]}),
            "principals[0]",
        ),
        (
            json.dumps(
                {
                    "format": TOKENS_FORMAT,
                    "principals": [{"name": "a", "roles": ["king"], "token_sha256": "0" * 64}],
                }
            ),
            "unknown role 'king'",
        ),
        (
            json.dumps(
                {
                    "format": TOKENS_FORMAT,
                    "principals": [{"name": "A B", "roles": ["auditor"], "token_sha256": "0" * 64}],
                }
            ),
            "a name is",
        ),
        (
            json.dumps(
                {
                    "format": TOKENS_FORMAT,
                    "principals": [{"name": "a", "roles": ["auditor"], "token_sha256": "secret"}],
                }
            ),
            "64 lower-case hex",
        ),
        (
            json.dumps(
                {
                    "format": TOKENS_FORMAT,
                    "principals": [
                        {"name": "a", "roles": ["auditor"], "token_sha256": "0" * 64},
                        {"name": "b", "roles": ["auditor"], "token_sha256": "0" * 64},
                    ],
                }
            ),
            "shares another's token",
        ),
    ],
)
def test_a_malformed_tokens_file_is_refused_naming_the_fault(
    tmp_path: Path, document: str, says: str
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(document)
    path.chmod(0o600)
    with pytest.raises(TokensError) as err:
        read_tokens_file(path)
    assert says in str(err.value)
    assert "secret" not in str(err.value)


def test_roles_are_kept_in_the_roles_table_order_and_any_role_grants() -> None:
    (p,) = parse_document(
        {
            "format": TOKENS_FORMAT,
            "principals": [
                {"name": "ops", "roles": ["auditor", "administrator"], "token_sha256": "a" * 64}
            ],
        },
        "test",
    )
    assert p.roles == ("administrator", "auditor")
    assert p.role_for("read-register") == "auditor"
    assert p.role_for("administer") == "administrator"
    assert p.role_for("submit") is None


def test_environment_tokens_name_a_principal_and_its_roles() -> None:
    token = "t" * MIN_CLEAR_TOKEN
    (p,) = from_environment(
        {"PATH": "/bin", "GATEWAY_API_TOKEN_CASE_SYSTEM": f"case-officer,auditor:{token}"}
    )
    assert (p.name, p.roles, p.source) == (
        "case-system",
        ("case-officer", "auditor"),
        "environment",
    )
    assert find([p], token) == p
    for bad in ("case-officer", f"king:{token}", "case-officer:short"):
        with pytest.raises(TokensError) as err:
            from_environment({"GATEWAY_API_TOKEN_X": bad})
        assert "short" not in str(err.value) and token not in str(err.value)


def test_the_gateway_refuses_to_start_with_a_readable_tokens_file(tmp_path: Path) -> None:
    path = _file(tmp_path, mode=0o644)
    config = parse_config(
        {"authority": "BE-DU", "api": {"tokens_file": str(path)}}, tmp_path / "g.toml"
    )
    with pytest.raises(ConfigError, match=r"api\.tokens_file: .*chmod 600"):
        Principals.from_config(config, LOG, environ={})


def test_the_tokens_file_is_read_again_when_it_changes_at_most_every_interval(
    tmp_path: Path,
) -> None:
    now = [0.0]
    alice, bob = new_token(), new_token()
    path = _file(tmp_path, Principal("alice", ("case-officer",), hash_token(alice), "file"))
    principals = Principals((), path, 5.0, LOG, monotonic=lambda: now[0])
    assert principals.reload("start")
    write_tokens_file(path, (Principal("bob", ("auditor",), hash_token(bob), "file"),))
    assert principals.resolve(alice) is not None  # not checked again yet
    now[0] = 5.0
    assert principals.resolve(alice) is None
    found = principals.resolve(bob)
    assert found is not None and found.name == "bob"
    path.chmod(0o644)
    path.touch()
    now[0] = 10.0
    assert principals.resolve(bob) is not None  # a refused file leaves the last good one


def test_art40_9_version_2_names_the_principal_and_version_1_bytes_are_unchanged() -> None:
    time = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
    v1 = next_entry(0, GENESIS_HASH, time=time, event="received", direction="in")
    v2 = next_entry(1, v1.hash, time=time, event="submitted", direction="out", principal="alice")
    assert b'"principal"' not in v1.canonical() and b'"v"' not in v1.canonical()
    assert v2.canonical().endswith(b',"principal":"alice","reason":null,"reference":null,'
                                   b'"seq":2,"status":null,"time":"2026-12-10T09:00:00.000000Z",'
                                   b'"type":null,"v":2}')  # fmt: skip
    assert verify_chain([v1, v2]) == (2, v2.hash)
    for forged in ("mallory", None):
        with pytest.raises(RegisterChainError) as err:
            verify_chain([v1, dataclasses.replace(v2, principal=forged)])
        assert err.value.sequence == 2
    with pytest.raises(RegisterChainError) as err:
        verify_chain([dataclasses.replace(v1, principal="alice"), v2])
    assert err.value.sequence == 1
