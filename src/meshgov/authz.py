"""Who may do what, shared by every face (HTTP API, console, wire protocol).

Rules: the ``guild`` group changes policies; a domain's owners (group ``<domain>-owners``) publish
that domain's products; principals query only as themselves; the Trino endpoints answer for the
identity Trino names only when the caller is in the ``query-engines`` group or is the guild.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def visible_report(report: Mapping[str, Any], principal: Principal) -> dict[str, Any]:
    """A policy revision's report as ``principal`` may read it.

    Its ``access`` impact holds every known principal's decisions before and after (row filters
    with their attribute values, unmasked columns): only the guild reads all of it, as only the
    guild explores another principal's access; anyone else sees the entries about itself.
    """
    shown = dict(report)
    if GUILD_GROUP not in principal.groups and isinstance(shown.get("access"), list):
        shown["access"] = [
            entry
            for entry in shown["access"]
            if isinstance(entry, Mapping) and entry.get("principal") == principal.id
        ]
    return shown
