"""The PostgreSQL listener: TLS, login as a principal, limits, cancel requests.

user = principal id, password = that principal's token, database = the purpose. A password
travels in clear only over TLS or loopback; where the tokens file holds a SCRAM-SHA-256 verifier
for the principal, the token never travels at all. A failed login is ``28P01`` whatever was wrong,
and repeated failures make later logins wait, then get the same refusal (``throttle.py``); an
unknown purpose is ``3D000`` naming the purposes the principal's grants allow (all, for the guild).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import ssl
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from meshgov.authz import GUILD_GROUP
from meshgov.pgwire import messages as m
from meshgov.pgwire.auth import MECHANISM, AuthenticationFailed, ScramExchange, mock_salt
from meshgov.pgwire.catalogue import CatalogueDatabases
from meshgov.pgwire.framing import MAX_AUTH_MESSAGE_BYTES, read_message
from meshgov.pgwire.session import SERVER_VERSION, Session
from meshgov.pgwire.state import Prepared, SessionState
from meshgov.pgwire.throttle import LoginLimits, LoginThrottle
from meshgov.pgwire.types import pg_type

if TYPE_CHECKING:
    from meshgov.core.principal import Principal
    from meshgov.service import Service
    from meshgov.tokens import TokenRegistry

log = logging.getLogger("meshgov.pgwire")

STARTUP_TIMEOUT_SECONDS = 10.0
SHAPE_CACHE_SIZE = 1024

# A result's RowDescription fields (name, type oid, modifier) and its encoders (text, binary).
Encoder = Callable[[Any], bytes]
Shape = tuple[list[tuple[str, int, int]], list[tuple[Encoder, Encoder]]]


@dataclass(frozen=True)
class WireSettings:
    host: str = "127.0.0.1"
    port: int = 5433
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_connections: int = 100
    max_connections_per_principal: int = 20
    idle_timeout_seconds: float = 3600.0
    catalogue_dsn: str | None = None
    catalogue_prefix: str = "meshgov_catalogue_"
    # Worker threads for engine work (queries, reading batches): most of their time is spent
    # waiting on the engine (PostgreSQL) or in it without the GIL (DuckDB).
    worker_threads: int = 16
    # Failed logins: delayed, then refused (28P01), per user name and per client address.
    login_limits: LoginLimits = field(default_factory=LoginLimits)


class PgListener:
    """Serves the PostgreSQL protocol on the service's state, caches and decision log."""

    def __init__(self, service: Service, tokens: TokenRegistry, settings: WireSettings) -> None:
        self.service = service
        self.tokens = tokens
        self.settings = settings
        self.catalogue = (
            CatalogueDatabases(settings.catalogue_dsn, settings.catalogue_prefix)
            if settings.catalogue_dsn
            else None
        )
        self.sessions: dict[tuple[int, int], Session] = {}
        self.executor = ThreadPoolExecutor(
            settings.worker_threads, thread_name_prefix="meshgov-wire"
        )
        # Parsed statements by (text, parameter types, principal, purpose, revisions), shared by
        # a principal's sessions (the types inferred for untyped parameters follow the columns
        # the principal sees); authorization is per execution (in the gateway, cached there).
        self.prepared_cache: dict[tuple[Any, ...], Prepared] = {}
        # The statements of simple Query texts, and the wire shape (fields, encoders) of the
        # Arrow schemas of results: both depend on nothing but their key.
        self.split_cache: dict[str, tuple[str, ...]] = {}
        self._shapes: dict[pa.Schema, Shape] = {}
        self._recent_shapes: deque[tuple[pa.Schema, Shape]] = deque(maxlen=8)
        self.per_principal: Counter[str] = Counter()
        self.connections = 0
        # Salts unknown users' SCRAM exchanges (auth.mock_salt); never leaves this process.
        self._mock_secret = secrets.token_bytes(32)
        self.login_throttle = LoginThrottle(settings.login_limits, time.monotonic)
        self._server: asyncio.Server | None = None
        self._tls: ssl.SSLContext | None = None
        if settings.tls_cert is not None:
            self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls.load_cert_chain(settings.tls_cert, settings.tls_key)
        self.default_settings = {
            "server_version": SERVER_VERSION,
            "server_encoding": "UTF8",
            "client_encoding": "UTF8",
            "datestyle": "ISO, MDY",
            "timezone": "UTC",
            "intervalstyle": "postgres",
            "integer_datetimes": "on",
            "standard_conforming_strings": "on",
            "is_superuser": "off",
            "application_name": "",
            "extra_float_digits": "1",
            "search_path": '"$user", public',
            "statement_timeout": "0",
            "transaction_isolation": "read committed",
            "default_transaction_isolation": "read committed",
            "transaction_read_only": "on",
            "default_transaction_read_only": "on",
            "client_min_messages": "notice",
            "bytea_output": "hex",
            "max_identifier_length": "63",
            "lc_messages": "C",
        }

    def shape(self, schema: pa.Schema) -> Shape:
        """The RowDescription fields and the value encoders of results of ``schema``."""
        for recent, shape in self._recent_shapes:  # comparing is cheaper than hashing
            if recent.equals(schema):
                return shape
        known = self._shapes.get(schema)
        if known is None:
            types = [pg_type(f.type) for f in schema]
            known = (
                [(f.name, t.oid, t.modifier) for f, t in zip(schema, types, strict=True)],
                [(t.text, t.binary) for t in types],
            )
            if len(self._shapes) >= SHAPE_CACHE_SIZE:
                self._shapes.clear()
            self._shapes[schema] = known
        self._recent_shapes.appendleft((schema, known))
        return known

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.settings.host, self.settings.port, reuse_port=True
        )
        log.info("PostgreSQL protocol on %s:%d", self.settings.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ----------------------------------------------------------------- one connection
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        principal: Principal | None = None
        session: Session | None = None
        try:
            started = await asyncio.wait_for(self._startup(reader, writer), STARTUP_TIMEOUT_SECONDS)
            if started is None:
                return
            reader, writer, params, secure = started
            if not await self._admit_login(writer, params):
                return
            principal = await asyncio.wait_for(
                self._authenticate(reader, writer, params, secure), STARTUP_TIMEOUT_SECONDS
            )
            if principal is None:
                return
            session = self._open_session(reader, writer, principal, params)
            if session is None:
                return
            await session.run()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except m.ProtocolViolation as exc:
            writer.write(m.error_response("08P01", f"protocol violation: {exc}", severity="FATAL"))
        except Exception:  # a bug must not leave a half-open session or reach the client
            log.exception("PostgreSQL session failed")
            writer.write(m.error_response("XX000", "internal error", severity="FATAL"))
        finally:
            if session is not None:
                self.sessions.pop((session.pid, session.key), None)
                await session.close_session()
            if principal is not None and session is not None:
                self.per_principal[principal.id] -= 1
                self.connections -= 1
            try:
                await writer.drain()
                writer.close()
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError, OSError):
                pass

    async def _startup(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, str], bool] | None:
        secure = False
        while True:
            size = int.from_bytes(await reader.readexactly(4), "big")
            if size < 8 or size > 10_000:
                raise m.ProtocolViolation("invalid startup packet length")
            body = await reader.readexactly(size - 4)
            code = int.from_bytes(body[:4], "big")
            if code == m.SSL_REQUEST:
                if self._tls is None or secure:
                    writer.write(b"N")
                    continue
                # Bytes sent with the SSLRequest, before the handshake, would be read afterwards as
                # if they had come over TLS (PostgreSQL's CVE-2021-23214): refuse the connection.
                if getattr(reader, "_buffer", b""):
                    raise m.ProtocolViolation("received unencrypted data after SSL request")
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(self._tls)
                secure = True
                continue
            if code == m.GSSENC_REQUEST:
                writer.write(b"N")
                continue
            if code == m.CANCEL_REQUEST:
                reader_ = m.Reader(body[4:])
                self._cancel(reader_.int32(), reader_.int32())
                return None
            if code != m.PROTOCOL_3:
                writer.write(
                    m.error_response("0A000", "unsupported protocol version", severity="FATAL")
                )
                return None
            return reader, writer, m.startup_parameters(body[4:]), secure

    def _cancel(self, pid: int, key: int) -> None:
        session = self.sessions.get((pid, key))
        if session is not None:
            session.cancel("canceling statement due to user request")

    async def _admit_login(self, writer: asyncio.StreamWriter, params: dict[str, str]) -> bool:
        """Wait out the login delay of the user name and address; False (and the wrong-password
        answer) when either is past its limit of failures."""
        user, address = params.get("user", ""), _client_address(writer)
        delay = self.login_throttle.delay(user, address)
        if delay > 0:
            await asyncio.sleep(delay)  # only this connection waits
        if self.login_throttle.refused(user, address):
            writer.write(_denied(user))
            return False
        return True

    def _login_failed(self, user: str, writer: asyncio.StreamWriter) -> None:
        address = _client_address(writer)
        user_limit, address_limit = self.login_throttle.failed(user, address)
        if user_limit or address_limit:
            # The address, not the name: a name may be a mistyped password.
            log.warning(
                "PostgreSQL logins refused for %s: too many failures from %s",
                "a user name" if user_limit else "an address",
                address,
            )

    async def _authenticate(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        params: dict[str, str],
        secure: bool,
    ) -> Principal | None:
        user = params.get("user", "")
        principals = self.tokens.by_id()
        verifier = self.tokens.verifiers.get(user)
        # An unknown user is asked for SCRAM as a known one is (and fails at the proof), so the
        # kind of exchange does not tell who exists (PostgreSQL's mock authentication).
        mock = verifier is None and user not in principals and bool(self.tokens.verifiers)
        denied = _denied(user)
        if verifier is None and not mock and not self._may_send_password(writer, secure):
            # No verifier: the token itself would be the password, which needs TLS or loopback
            # (said to every user alike, so the answer does not tell who exists).
            writer.write(
                m.error_response(
                    "28000",
                    "password login sends the token in clear: connect with TLS "
                    "(sslmode=require) or over loopback, or give the token a SCRAM verifier "
                    "(meshgov token)",
                    severity="FATAL",
                )
            )
            return None
        if verifier is not None or mock:
            exchange = ScramExchange(verifier, mock_salt(self._mock_secret, user))
            writer.write(m.authentication(10, m.cstring(MECHANISM) + b"\x00"))
            await writer.drain()
            try:
                kind, payload = await read_message(reader, MAX_AUTH_MESSAGE_BYTES)
                if kind != b"p":
                    raise AuthenticationFailed("expected SASLInitialResponse")
                first = m.Reader(payload)
                if first.cstring() != MECHANISM:
                    raise AuthenticationFailed("unsupported SASL mechanism")
                size = first.int32()
                writer.write(m.authentication(11, exchange.server_first(first.bytes_(size))))
                await writer.drain()
                kind, payload = await read_message(reader, MAX_AUTH_MESSAGE_BYTES)
                if kind != b"p":
                    raise AuthenticationFailed("expected SASLResponse")
                final = exchange.server_final(payload)
            except AuthenticationFailed:
                self._login_failed(user, writer)
                writer.write(denied)
                return None
            principal = principals.get(user)
            if principal is None:  # a verifier without a principal cannot happen; fail closed
                self._login_failed(user, writer)
                writer.write(denied)
                return None
            return self._logged_in(principal, writer, m.authentication(12, final))
        writer.write(m.AUTH_CLEARTEXT)
        await writer.drain()
        kind, payload = await read_message(reader, MAX_AUTH_MESSAGE_BYTES)
        if kind != b"p":
            self._login_failed(user, writer)
            writer.write(denied)
            return None
        password = m.Reader(payload).cstring()
        found = self.tokens.by_password(user, password)
        if found is None:
            self._login_failed(user, writer)
            writer.write(denied)
            return None
        return self._logged_in(found, writer, b"")

    def _logged_in(
        self, principal: Principal, writer: asyncio.StreamWriter, final: bytes
    ) -> Principal | None:
        """A proven login is accepted only if its user name and address are still under their
        limits now: concurrent attempts all pass ``_admit_login`` before any has failed, so
        only those that end before the limit is reached may succeed."""
        if self.login_throttle.refused(principal.id, _client_address(writer)):
            writer.write(_denied(principal.id))  # the same answer as a wrong password
            return None
        self.login_throttle.succeeded(principal.id)
        if final:
            writer.write(final)
        return principal

    def _may_send_password(self, writer: asyncio.StreamWriter, secure: bool) -> bool:
        if secure:
            return True
        peer = writer.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            try:
                return ipaddress.ip_address(peer[0]).is_loopback
            except ValueError:
                return False
        return isinstance(peer, str | bytes)  # a Unix socket is local

    def _open_session(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        principal: Principal,
        params: dict[str, str],
    ) -> Session | None:
        purpose = params.get("database") or params.get("user", "")
        allowed = self.purposes()
        if purpose not in allowed:
            listed = ", ".join(self.purposes_of(principal, allowed)) or "none"
            writer.write(
                m.error_response(
                    "3D000",
                    f'database "{purpose}" does not exist: the database is the purpose of your '
                    f"queries; {principal.id} may use: {listed}",
                    severity="FATAL",
                )
            )
            return None
        if self.connections >= self.settings.max_connections:
            writer.write(m.error_response("53300", "too many connections", severity="FATAL"))
            return None
        if self.per_principal[principal.id] >= self.settings.max_connections_per_principal:
            writer.write(
                m.error_response(
                    "53300", f"too many connections for principal {principal.id}", severity="FATAL"
                )
            )
            return None
        self.connections += 1
        self.per_principal[principal.id] += 1
        settings = dict(self.default_settings)
        for name in ("application_name", "client_encoding", "datestyle", "timezone",
                     "extra_float_digits"):  # fmt: skip
            for key, value in params.items():
                if key.lower() == name:
                    settings[name] = value
        state = SessionState(principal, purpose, settings)
        session = Session(self, reader, writer, state)
        self.sessions[(session.pid, session.key)] = session
        writer.write(m.AUTH_OK)
        for name in ("server_version", "server_encoding", "client_encoding", "datestyle",
                     "timezone", "integer_datetimes", "standard_conforming_strings",
                     "intervalstyle", "application_name", "is_superuser"):  # fmt: skip
            writer.write(m.parameter_status(_reported(name), settings[name]))
        writer.write(m.parameter_status("session_authorization", principal.id))
        writer.write(m.backend_key(session.pid, session.key))
        writer.write(m.ready_for_query(b"I"))
        return session

    def purposes(self) -> set[str]:
        """The purposes a session may name as its database: those the registry knows."""
        from meshgov.gateway import registered_purposes

        return set(registered_purposes(self.service.state.bundle))

    def purposes_of(self, principal: Principal, registered: set[str]) -> list[str]:
        """The purposes to name to ``principal`` in a ``3D000``: every registered one for the
        guild; for anyone else those for which the gateway lets them read at least one port."""
        from meshgov.access_overview import granted_purposes

        if GUILD_GROUP in principal.groups:
            return sorted(registered)
        return granted_purposes(self.service.state.gateway, principal)


def _denied(user: str) -> bytes:
    return m.error_response(
        "28P01", f'password authentication failed for user "{user}"', severity="FATAL"
    )


def _client_address(writer: asyncio.StreamWriter) -> str:
    """The peer's IP address; ``local`` for a Unix socket."""
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "local"


def _reported(name: str) -> str:
    return {"timezone": "TimeZone", "datestyle": "DateStyle", "intervalstyle": "IntervalStyle"}.get(
        name, name
    )
