"""Tokens → principals: the one registry every face authenticates with (HTTP, the wire protocol).

The tokens file holds only digests of the tokens, never the tokens themselves:

    tokens:
      - sha256: 9f86d0…            # sha256(token) in hex
        scram: SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>   # optional (PostgreSQL clients)
        principal: {id: analyst-eu, groups: [analysts], domain: analytics,
                    attributes: {region: EU, clearances: []}}

``scram`` is the token's SCRAM-SHA-256 verifier (RFC 5802/7677, PostgreSQL's format): with it,
PostgreSQL clients log in without sending the token at all. ``meshgov token`` makes a token with
both digests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from meshgov.core.principal import Principal
from meshgov.core.yaml_source import load_yaml
from meshgov.errors import InputError, Location

KNOWN_TOKENS_CACHE = 1024
SCRAM_ITERATIONS = 4096


class Unauthenticated(InputError):
    """No token, or one that matches nobody (HTTP 401)."""

    code = "unauthenticated"
    http_status = 401


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenRegistry:
    """sha256(token) → principal."""

    principals: dict[str, Principal]
    # Principal id → SCRAM-SHA-256 verifier of its token (entries that have one).
    verifiers: dict[str, ScramVerifier] = field(default_factory=dict)
    # Authorization header values already authenticated → principal, so that a keep-alive client
    # does not pay a SHA-256 per request. Only in this process's memory, never written anywhere;
    # bounded, and only known tokens enter it (unknown ones are hashed every time).
    _known: dict[str, Principal] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def empty(cls) -> TokenRegistry:
        return cls({})

    @classmethod
    def from_file(cls, path: Path) -> TokenRegistry:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(
                f"cannot read tokens file: {exc.strerror}", Location(file=source)
            ) from None
        doc = load_yaml(text, source)
        entries = doc.data.get("tokens") if isinstance(doc.data, dict) else None
        if not isinstance(entries, list):
            raise InputError("a tokens file needs a 'tokens' list", Location(file=source, line=1))
        principals: dict[str, Principal] = {}
        verifiers: dict[str, ScramVerifier] = {}
        for index, entry in enumerate(entries):
            where = Location(file=source, line=doc.line_of(("tokens", index)))
            if not isinstance(entry, dict):
                raise InputError(f"tokens[{index}] must be a mapping", where)
            digest = str(entry.get("sha256", "")).lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise InputError(f"tokens[{index}].sha256 must be 64 hex digits", where)
            try:
                principal = Principal.model_validate(entry.get("principal"))
            except ValidationError as exc:
                first = exc.errors()[0]
                dotted = ".".join(str(p) for p in first["loc"])
                raise InputError(
                    f"tokens[{index}].principal.{dotted}: {first['msg']}", where
                ) from None
            principals[digest] = principal
            if entry.get("scram") is not None:
                try:
                    verifiers[principal.id] = ScramVerifier.parse(str(entry["scram"]))
                except ValueError as exc:
                    raise InputError(f"tokens[{index}].scram: {exc}", where) from None
        return cls(principals, verifiers)

    def by_id(self) -> dict[str, Principal]:
        """Known principals by id (Trino names users; their attributes come from here)."""
        return {p.id: p for p in self.principals.values()}

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer …`` header value."""
        known = self._known.get(authorization) if authorization else None
        if known is not None:
            return known
        if not authorization:
            raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        # Lookup by digest: timing reveals nothing about stored tokens (preimage resistance).
        principal = self.principals.get(token_digest(token.strip()))
        if principal is None:
            raise Unauthenticated("unknown or revoked token")
        if len(self._known) >= KNOWN_TOKENS_CACHE:
            self._known.clear()
        self._known[authorization] = principal
        return principal

    def by_password(self, user: str, password: str) -> Principal | None:
        """The principal ``user`` when ``password`` is its token (the wire protocol's login)."""
        principal = self.principals.get(token_digest(password))
        return principal if principal is not None and principal.id == user else None


@dataclass(frozen=True)
class ScramVerifier:
    """What a server keeps of a SCRAM-SHA-256 secret: enough to check a proof, not to make one."""

    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    @classmethod
    def parse(cls, text: str) -> ScramVerifier:
        try:
            mechanism, rest = text.split("$", 1)
            params, keys = rest.split("$", 1)
            iterations, salt = params.split(":", 1)
            stored, server = keys.split(":", 1)
            verifier = cls(
                int(iterations),
                base64.b64decode(salt, validate=True),
                base64.b64decode(stored, validate=True),
                base64.b64decode(server, validate=True),
            )
        except ValueError:
            raise ValueError(
                "expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"
            ) from None
        if mechanism != "SCRAM-SHA-256" or verifier.iterations < 1:
            raise ValueError("only SCRAM-SHA-256 verifiers with iterations ≥ 1 are supported")
        if len(verifier.stored_key) != 32 or len(verifier.server_key) != 32:
            raise ValueError("StoredKey and ServerKey must be 32 bytes (SHA-256)")
        return verifier

    @classmethod
    def make(cls, password: str, *, iterations: int = SCRAM_ITERATIONS) -> ScramVerifier:
        salt = secrets.token_bytes(16)
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        return cls(iterations, salt, hashlib.sha256(client_key).digest(), server_key)

    def __str__(self) -> str:
        b64 = base64.b64encode
        return (
            f"SCRAM-SHA-256${self.iterations}:{b64(self.salt).decode()}$"
            f"{b64(self.stored_key).decode()}:{b64(self.server_key).decode()}"
        )
