"""The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677), as PostgreSQL speaks it.

The tokens file keeps each token's verifier (StoredKey, ServerKey, salt, iterations), so a client
proves it knows the token without sending it. An unknown user gets the same exchange, with a
made-up salt (the same for the same user name, as a real one stays the same: ``mock_salt``), and
fails at the same step: the answer never says which part was wrong, nor whether the user exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from meshgov.tokens import SCRAM_ITERATIONS, ScramVerifier

MECHANISM = "SCRAM-SHA-256"


class AuthenticationFailed(Exception):
    """The exchange failed (SQLSTATE 28P01); the message is the same whatever went wrong."""


def _attributes(message: str) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if sep and len(key) == 1:
            attributes.setdefault(key, value)
    return attributes


def mock_salt(secret: bytes, user: str) -> bytes:
    """The made-up salt of an unknown ``user``: stable for the name (a random one per attempt would
    tell an unknown user from a known one), unguessable without the server's ``secret``."""
    return hmac.digest(secret, user.encode(), "sha256")[:16]


@dataclass
class ScramExchange:
    """One SCRAM-SHA-256 login; ``verifier`` None = unknown user (fails at the proof), whose
    salt is ``mock_salt``."""

    verifier: ScramVerifier | None
    mock_salt: bytes = b""
    _client_first_bare: str = ""
    _server_first: str = ""
    _nonce: str = ""

    def server_first(self, client_first: bytes) -> bytes:
        try:
            text = client_first.decode()
        except UnicodeDecodeError:
            raise AuthenticationFailed("malformed SCRAM message") from None
        gs2, _, rest = text.partition(",")
        # "n": no channel binding; "y": the client could but thinks the server cannot. "p=…"
        # (channel binding) is not offered, so a client asking for it is refused.
        if gs2 not in {"n", "y"}:
            raise AuthenticationFailed("SCRAM channel binding is not supported")
        _authzid, _, bare = rest.partition(",")
        client_nonce = _attributes(bare).get("r", "")
        if not client_nonce:
            raise AuthenticationFailed("malformed SCRAM message")
        if self.verifier is not None:
            salt, iterations = self.verifier.salt, self.verifier.iterations
        else:
            salt, iterations = self.mock_salt or secrets.token_bytes(16), SCRAM_ITERATIONS
        self._client_first_bare = bare
        self._nonce = client_nonce + base64.b64encode(secrets.token_bytes(18)).decode()
        self._server_first = f"r={self._nonce},s={base64.b64encode(salt).decode()},i={iterations}"
        return self._server_first.encode()

    def server_final(self, client_final: bytes) -> bytes:
        try:
            text = client_final.decode()
        except UnicodeDecodeError:
            raise AuthenticationFailed("malformed SCRAM message") from None
        without_proof, _, proof_part = text.rpartition(",p=")
        attributes = _attributes(without_proof)
        if attributes.get("r") != self._nonce or not proof_part:
            raise AuthenticationFailed("SCRAM nonce mismatch")
        try:
            proof = base64.b64decode(proof_part, validate=True)
        except ValueError:
            raise AuthenticationFailed("malformed SCRAM proof") from None
        verifier = self.verifier
        if verifier is None or len(proof) != 32:
            raise AuthenticationFailed("password authentication failed")
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = hmac.digest(verifier.stored_key, auth_message, "sha256")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), verifier.stored_key):
            raise AuthenticationFailed("password authentication failed")
        server_signature = hmac.digest(verifier.server_key, auth_message, "sha256")
        return b"v=" + base64.b64encode(server_signature)
