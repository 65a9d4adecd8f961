"""Bearer tokens → principals, and who may do what.

The tokens file holds only SHA-256 digests of the tokens, never the tokens themselves:

    tokens:
      - sha256: 9f86d0…            # sha256(token) in hex
        principal: {id: analyst-eu, groups: [analysts], domain: analytics,
                    attributes: {region: EU, clearances: []}}

Rules: the ``guild`` group changes policies; a domain's owners (group ``<domain>-owners``) publish
that domain's products; principals query only as themselves; the Trino endpoints answer for the
identity Trino names only when the caller is in the ``query-engines`` group or is the guild.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from meshgov.core.principal import Principal
from meshgov.core.yaml_source import load_yaml
from meshgov.errors import AccessDenied, InputError, Location

GUILD_GROUP = "guild"
QUERY_ENGINE_GROUP = "query-engines"
KNOWN_TOKENS_CACHE = 1024


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
        return cls(principals)

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


def require_guild(principal: Principal) -> None:
    if GUILD_GROUP not in principal.groups:
        raise AccessDenied(f"only the '{GUILD_GROUP}' group may change policies ({principal.id})")


def owners_group(domain: str) -> str:
    return f"{domain}-owners"


def require_owner(principal: Principal, domain: str) -> None:
    if owners_group(domain) not in principal.groups:
        raise AccessDenied(
            f"only the owners of domain '{domain}' (group '{owners_group(domain)}') may publish "
            f"its products ({principal.id})"
        )


def require_self(principal: Principal, claimed_id: str | None) -> None:
    if claimed_id is not None and claimed_id != principal.id:
        raise AccessDenied(
            f"principals query only as themselves: token is '{principal.id}', "
            f"request names '{claimed_id}'"
        )


def may_speak_for_others(principal: Principal) -> bool:
    return QUERY_ENGINE_GROUP in principal.groups or GUILD_GROUP in principal.groups
