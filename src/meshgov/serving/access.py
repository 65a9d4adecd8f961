"""The analyst's side of the service: what a principal may read, as the gateway enforces it."""

from __future__ import annotations

from collections.abc import Sequence

from meshgov.access_overview import AccessOverview, access_overview
from meshgov.core.principal import Principal
from meshgov.core.sql.model import PortRef
from meshgov.serving.state import ServiceCore


class AccessListing(ServiceCore):
    """Lists the ports, columns, masks and row filters a principal may read for a purpose."""

    def access_overview(
        self,
        principal: Principal,
        purpose: str | None,
        ports: Sequence[PortRef] | None = None,
        *,
        with_purposes: bool = True,
    ) -> AccessOverview:
        """The active revision's answer (the same decisions and rewrites queries get); with
        ``ports``, for those ports only (a page of a large catalogue)."""
        return access_overview(
            self.state.gateway, principal, purpose, ports, with_purposes=with_purposes
        )
