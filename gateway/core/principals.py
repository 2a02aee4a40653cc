"""Named users of the internal API (principals): who holds which roles, and the tokens they
prove it with, kept only as hashes.

The tokens file is JSON (written by `gateway users`, read by the gateway)::

    {"format": "gateway-tokens/1",
     "principals": [{"name": "alice", "roles": ["case-officer"], "token_sha256": "<hex>"}]}

Why SHA-256 and no slow key derivation: every token the file holds is made by
`new_token` from 256 random bits. A slow KDF (scrypt, argon2) protects guessable secrets
such as passwords, whose space is small enough to search; 2**256 is not, so a stolen file
gives nothing to search, and the check stays a microsecond per request instead of tens of
milliseconds. The hash comparison runs in constant time over every principal (`find`).

Pure: no file, no clock, no environment; gateway/service/principals.py does the I/O."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.roles import PERMISSIONS, ROLES

TOKENS_FORMAT = "gateway-tokens/1"
TOKEN_PREFIX = "gwt_"  # noqa: S105 (a prefix, not a secret)
"""Marks a token as this gateway's (secret scanners and log filters can match it)."""
NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
"""A principal's name: lower case, as the register records it (at most 64 characters)."""
ENV_PREFIX = "GATEWAY_API_TOKEN_"
"""`GATEWAY_API_TOKEN_<NAME>=<role>[,<role>...]:<token>`: a principal from the environment."""
MIN_CLEAR_TOKEN = 32
"""Shortest token an operator may choose (environment); generated ones are longer."""


class TokensError(ValueError):
    """A tokens file or an environment token that cannot be used; never quotes a token."""


@dataclass(frozen=True)
class Principal:
    """A named user of the internal API and the roles it holds."""

    name: str
    roles: tuple[str, ...]
    token_sha256: str
    source: str
    """Where it was defined: "file", "environment" or "configuration" (deprecated)."""

    def role_for(self, permission: str) -> str | None:
        """The first of its roles (in ROLES order) that holds `permission`, else None."""
        allowed = PERMISSIONS[permission]
        return next((role for role in self.roles if role in allowed), None)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """256 random bits, URL-safe: shown once to the user, stored only as its hash."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def find(principals: Iterable[Principal], token: str) -> Principal | None:
    """The principal `token` belongs to. Every stored hash is compared, in constant time, so
    the time taken says nothing about which (or whether one) matched."""
    digest = hash_token(token).encode("ascii")
    found = None
    for principal in principals:
        if hmac.compare_digest(digest, principal.token_sha256.encode("ascii")):
            found = principal
    return found


def _roles(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(r, str) for r in value):
        raise TokensError(f"{where}: roles must be a non-empty list of role names")
    unknown = sorted(set(value) - set(ROLES))
    if unknown:
        raise TokensError(f"{where}: unknown role {unknown[0]!r}; known: {', '.join(ROLES)}")
    return tuple(role for role in ROLES if role in value)


def check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise TokensError(
            f"{where}: a name is 1-64 characters: lower-case letters, digits, '.', '_', '@', "
            "'-', starting with a letter or digit"
        )
    return name


def check_roles(roles: Iterable[str], where: str) -> tuple[str, ...]:
    return _roles(list(roles), where)


def parse_document(data: Any, where: str) -> tuple[Principal, ...]:
    """The principals of a tokens file's JSON; TokensError names the first fault."""
    if not isinstance(data, dict) or data.get("format") != TOKENS_FORMAT:
        raise TokensError(f"{where}: not a tokens file (expected format {TOKENS_FORMAT!r})")
    if set(data) != {"format", "principals"} or not isinstance(data["principals"], list):
        raise TokensError(f"{where}: expected exactly the keys 'format' and 'principals' (a list)")
    out: list[Principal] = []
    for i, item in enumerate(data["principals"]):
        at = f"{where}: principals[{i}]"
        if not isinstance(item, dict) or set(item) != {"name", "roles", "token_sha256"}:
            raise TokensError(f"{at}: expected exactly 'name', 'roles' and 'token_sha256'")
        name = check_name(item["name"], at)
        digest = item["token_sha256"]
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise TokensError(f"{at}: token_sha256 must be 64 lower-case hex digits")
        out.append(Principal(name, _roles(item["roles"], at), digest, "file"))
    return check_distinct(out, where)


def render_document(principals: Iterable[Principal]) -> dict[str, Any]:
    """The tokens file's JSON for `principals`, by name."""
    return {
        "format": TOKENS_FORMAT,
        "principals": [
            {"name": p.name, "roles": list(p.roles), "token_sha256": p.token_sha256}
            for p in sorted(principals, key=lambda p: p.name)
        ],
    }


def check_distinct(principals: Iterable[Principal], where: str) -> tuple[Principal, ...]:
    """Each name once and each token once (one token proving two principals would make the
    register name the wrong one)."""
    names: set[str] = set()
    digests: set[str] = set()
    out = tuple(principals)
    for p in out:
        if p.name in names:
            raise TokensError(f"{where}: the principal {p.name!r} is defined twice")
        if p.token_sha256 in digests:
            raise TokensError(f"{where}: the principal {p.name!r} shares another's token")
        names.add(p.name)
        digests.add(p.token_sha256)
    return out


def from_environment(environ: Mapping[str, str]) -> tuple[Principal, ...]:
    """Principals of `GATEWAY_API_TOKEN_<NAME>=<role>[,<role>...]:<token>` variables (for
    containers): NAME is lower-cased and its '_' become '-' (GATEWAY_API_TOKEN_CASE_SYSTEM
    is the principal case-system)."""
    out = []
    for key in sorted(environ):
        if not key.startswith(ENV_PREFIX):
            continue
        name = check_name(key.removeprefix(ENV_PREFIX).lower().replace("_", "-"), key)
        roles, sep, token = environ[key].partition(":")
        if not sep or len(token) < MIN_CLEAR_TOKEN:
            raise TokensError(
                f"{key} must be <role>[,<role>...]:<token>, the token at least "
                f"{MIN_CLEAR_TOKEN} characters"
            )
        out.append(Principal(name, _roles(roles.split(","), key), hash_token(token), "environment"))
    return tuple(out)


def from_role_tokens(tokens: Mapping[str, str]) -> tuple[Principal, ...]:
    """The deprecated `[api.tokens]` table (role = token): one principal per role, named
    after it."""
    return tuple(
        Principal(role, (role,), hash_token(token), "configuration")
        for role, token in tokens.items()
    )
