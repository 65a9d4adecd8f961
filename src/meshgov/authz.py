"""Who may do what, shared by every face (HTTP API, console, wire protocol).

Rules: the ``guild`` group changes policies; a domain's owners (group ``<domain>-owners``) publish
that domain's products; principals query only as themselves; the Trino endpoints answer for the
identity Trino names only when the caller is in the ``query-engines`` group or is the guild.
"""

from __future__ import annotations

from meshgov.core.principal import Principal
from meshgov.errors import AccessDenied

GUILD_GROUP = "guild"
QUERY_ENGINE_GROUP = "query-engines"


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
