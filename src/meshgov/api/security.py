"""Bearer tokens → principals, and who may do what (the rules live in ``meshgov.authz``).

The tokens file holds only SHA-256 digests of the tokens, never the tokens themselves (tokens.py).
"""

from __future__ import annotations

from meshgov.authz import GUILD_GROUP as GUILD_GROUP
from meshgov.authz import QUERY_ENGINE_GROUP as QUERY_ENGINE_GROUP
from meshgov.authz import may_speak_for_others as may_speak_for_others
from meshgov.authz import owners_group as owners_group
from meshgov.authz import require_guild as require_guild
from meshgov.authz import require_owner as require_owner
from meshgov.authz import require_self as require_self

# The token registry is shared by every face (HTTP, the PostgreSQL wire protocol): see tokens.py.
from meshgov.tokens import TokenRegistry as TokenRegistry
from meshgov.tokens import Unauthenticated as Unauthenticated
from meshgov.tokens import token_digest as token_digest
