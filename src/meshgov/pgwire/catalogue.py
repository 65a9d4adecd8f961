"""The governed catalogue: what ``\\dt``, ``DatabaseMetaData`` and SQLAlchemy's inspector see.

Clients introspect with PostgreSQL's own catalogue SQL (``pg_class``, ``pg_attribute``,
``format_type``, ``'pg_class'::regclass``…), which no other engine answers faithfully. So the
catalogue is a real PostgreSQL database holding, as empty tables, exactly the ports a principal may
read under a purpose, with only their visible columns and the types the gateway returns (a hashed
column is text). One database per distinct view (a fingerprint of purpose, tables and columns), so
principals who see the same thing share it and nobody's database shows another's ports.

Introspection SQL is parsed with sqlglot, checked and rewritten before it reaches that database:
- only queries (no DDL, no SET: the tree is regenerated, so nothing else can ride along);
- only catalogue relations (``pg_catalog``, ``information_schema``) and the view's own tables;
  cluster-wide catalogues (``pg_database``, ``pg_roles``…) are replaced by subqueries showing this
  database (named after the purpose) and no roles; server-state catalogues (``pg_stat_activity``,
  ``pg_settings``…) are refused;
- only functions of an allow-list; ``current_user`` and ``current_database()`` answer the
  principal and the purpose; ``current_setting`` answers this session's settings;
- no casts to ``regrole`` (role names are cluster-wide).
It runs as a role without privileges, read-only, with a statement timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq, sql
from sqlglot import exp
from sqlglot.dialects.postgres import Postgres

from meshgov.errors import BackendUnavailable
from meshgov.pgwire.types import TYPE_NAMES

log = logging.getLogger("meshgov.pgwire")

READER_ROLE = "meshgov_catalogue_reader"
# Part of each database's name: a change of what a catalogue database holds makes new ones.
CATALOGUE_LAYOUT = 2
CATALOGUE_SCHEMAS = {"pg_catalog", "information_schema"}
# Cluster-wide catalogues: each is replaced by a view of this database or this session only.
SHADOWED = {"pg_database", "pg_roles", "pg_user", "pg_authid", "pg_shadow", "pg_group",
            "pg_auth_members", "pg_tablespace", "pg_shdescription"}  # fmt: skip
# Server state, other sessions, configuration files: never shown.
REFUSED = {"pg_stat_activity", "pg_settings", "pg_file_settings", "pg_hba_file_rules",
           "pg_ident_file_mappings", "pg_db_role_setting", "pg_replication_slots",
           "pg_stat_replication", "pg_subscription", "pg_user_mappings", "pg_user_mapping",
           "pg_largeobject", "pg_largeobject_metadata", "pg_stat_ssl", "pg_stat_gssapi",
           "pg_backend_memory_contexts", "pg_shmem_allocations", "pg_locks", "pg_prepared_xacts",
           "pg_config", "pg_available_extensions", "pg_stat_wal_receiver",
           "pg_stat_subscription", "pg_statistic", "pg_shseclabel", "pg_seclabels",
           "pg_shdepend", "pg_replication_origin", "pg_replication_origin_status",
           "pg_parameter_acl", "pg_available_extension_versions",
           # planner statistics: those of shared catalogues (pg_database's datname histogram)
           # name every database of the cluster
           "pg_stats", "pg_stats_ext", "pg_stats_ext_exprs", "pg_statistic_ext_data"}  # fmt: skip
# Cumulative statistics views: cluster-wide (pg_stat_database names every database, pg_stat_wal
# and pg_stat_bgwriter show the server's activity) or per-session; clients do not need them.
REFUSED_PREFIXES = ("pg_stat_", "pg_statio_")
# has_*_privilege(role, object, privilege): a role argument makes them role-name (and role oid)
# oracles ("role ... does not exist"). The forms without it ask about the current role.
PRIVILEGE_ARITY = {"has_table_privilege": 2, "has_column_privilege": 3,
                   "has_schema_privilege": 2, "has_function_privilege": 2,
                   "has_type_privilege": 2, "has_sequence_privilege": 2,
                   "has_any_column_privilege": 2}  # fmt: skip
# Functions catalogue SQL uses (psql, pgJDBC, SQLAlchemy, ADBC, DBeaver), plus plain scalar ones.
ALLOWED_FUNCTIONS = {
    "format_type", "pg_get_expr", "pg_get_constraintdef", "pg_get_indexdef", "pg_get_viewdef",
    "pg_get_triggerdef", "pg_get_ruledef", "pg_get_keywords", "pg_get_serial_sequence",
    "pg_get_function_arguments", "pg_get_function_result", "pg_get_function_identity_arguments",
    "pg_get_partkeydef", "pg_get_statisticsobjdef_columns", "pg_get_userbyid",
    "pg_table_is_visible", "pg_type_is_visible", "pg_function_is_visible",
    "pg_collation_is_visible", "pg_opclass_is_visible", "pg_operator_is_visible",
    "pg_conversion_is_visible", "pg_statistics_obj_is_visible", "pg_ts_config_is_visible",
    "pg_encoding_to_char", "pg_char_to_encoding", "obj_description", "col_description",
    "shobj_description", "pg_relation_is_publishable", "pg_get_publication_tables",
    "has_table_privilege", "has_column_privilege", "has_schema_privilege",
    "has_function_privilege", "has_type_privilege", "has_sequence_privilege",
    "has_any_column_privilege", "pg_is_other_temp_schema", "pg_my_temp_schema",
    "pg_backend_pid", "pg_postmaster_start_time", "pg_is_in_recovery", "to_regtype",
    "to_regclass", "to_regproc", "to_regprocedure", "to_regnamespace", "to_regtypemod",
    "format", "quote_ident", "quote_literal", "quote_nullable", "unnest", "generate_series",
    "generate_subscripts", "array_length", "array_lower", "array_upper", "array_position",
    "array_agg", "string_agg", "json_agg", "json_build_object", "jsonb_build_object",
    "json_build_array", "row_to_json", "to_json", "regexp_replace", "regexp_match",
    "textcat", "current_setting", "pg_get_function_sqlbody", "pg_index_column_has_property",
    "pg_indexam_has_property", "pg_index_has_property", "pg_column_is_updatable",
    "pg_relation_is_updatable", "pg_options_to_table",
    "_pg_expandarray", "_pg_char_max_length", "_pg_numeric_precision", "_pg_numeric_scale",
    "_pg_datetime_precision", "_pg_truetypid", "_pg_truetypmod", "_pg_index_position",
    "_pg_char_octet_length", "_pg_numeric_precision_radix", "_pg_interval_type",
    "concat", "concat_ws", "split_part", "translate", "lpad", "rpad", "btrim", "ltrim",
    "rtrim", "starts_with", "array_remove", "array_cat", "array_append", "cardinality",
    "oidvectortypes", "array_in", "array_out", "pg_get_function_arg_default", "row_number",
    "rank", "dense_rank", "txid_current", "pg_current_xact_id", "age", "now", "to_char",
}  # fmt: skip
SESSION_KEYWORDS = {"user", "current_user", "session_user", "current_role"}
REFUSED_FUNCTIONS = {"current_ip_address", "current_client", "current_session",
                     "current_statement", "current_transaction", "pg_sleep", "set_config",
                     "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file",
                     "inet_server_addr", "inet_client_addr", "pg_has_role"}  # fmt: skip
OWNER_NAME = "meshgov"
NAME_TYPE = exp.DataType.build("name", dialect="postgres", udt=True)
REFUSED_TYPES = {"regrole"}
# Server settings clients read with current_setting() (SQLAlchemy's inspector asks for the table
# access method) that say nothing about the server's identity, network or files: answered by the
# catalogue database. Any other setting that is not the session's own is unknown here.
SERVER_SETTINGS_SHOWN = {"default_table_access_method", "max_index_keys", "max_function_args",
                         "max_identifier_length", "block_size", "lc_collate", "lc_ctype",
                         "default_text_search_config"}  # fmt: skip


class CatalogueRefused(Exception):
    """An introspection query the governed catalogue does not answer (SQLSTATE in ``sqlstate``)."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message


@dataclass(frozen=True)
class VisibleTable:
    schema: str
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, PostgreSQL type)


@dataclass(frozen=True)
class VisibleCatalogue:
    """What one principal may read under one purpose, as PostgreSQL tables."""

    purpose: str
    tables: tuple[VisibleTable, ...]

    @property
    def fingerprint(self) -> str:
        document = {
            "layout": CATALOGUE_LAYOUT,
            "purpose": self.purpose,
            "tables": [[t.schema, t.name, list(t.columns)] for t in self.tables],
        }
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def pg_type_name(oid: int, modifier: int) -> str:
    """A type as DDL text for the catalogue table (numeric keeps precision and scale)."""
    if oid == 1700 and modifier >= 4:
        raw = modifier - 4
        return f"numeric({raw >> 16},{raw & 0xFFFF})"
    array_elements = {1000: 16, 1005: 21, 1007: 23, 1016: 20, 1009: 25, 1021: 700, 1022: 701,
                      1182: 1082, 1115: 1114, 1185: 1184, 1231: 1700, 1015: 1043}  # fmt: skip
    if oid in array_elements:
        return TYPE_NAMES[array_elements[oid]] + "[]"
    return TYPE_NAMES.get(oid, "text")


# --------------------------------------------------------------------------- checking and rewriting
def is_catalogue_query(tree: exp.Expression) -> bool:
    """Whether ``tree`` reads the catalogue (and only it): then it is answered here."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    tables = [t for t in tree.find_all(exp.Table) if t.name.lower() not in ctes or t.db]
    if tables:
        system = [_is_catalogue_table(t) for t in tables]
        if all(system):
            return True
        if any(system):
            raise CatalogueRefused(
                "0A000", "a query cannot read both the catalogue and data products"
            )
        return False
    for func in tree.find_all(exp.Func):
        name = function_name(func)
        if name.startswith(("pg_", "has_", "to_reg", "obj_", "col_", "format_type")) or name in {
            "current_setting",
            "version",
            "current_database",
            "current_schema",
            "current_schemas",
            "current_version",
            "current_catalog",
            "current_user",
            "session_user",
        }:
            return True
    for data_type in tree.find_all(exp.DataType):
        if data_type.sql("postgres").lower().split(".")[-1].startswith("reg"):
            return True
    return False


def _is_catalogue_table(table: exp.Table) -> bool:
    schema = table.db.lower()
    if schema:
        return schema in CATALOGUE_SCHEMAS
    return table.name.lower().startswith("pg_")


def function_name(func: exp.Expr) -> str:
    if isinstance(func, exp.Anonymous):
        return str(func.name).lower()
    if isinstance(func, exp.Func):
        return str(func.sql_name()).lower()
    return ""


def rewrite_catalogue_query(
    tree: exp.Expression,
    *,
    principal_id: str,
    purpose: str,
    settings: Mapping[str, str],
    database_columns: Sequence[str] = (),
    relation_columns: Mapping[tuple[str, str], Sequence[tuple[str, str]]] | None = None,
) -> exp.Expression:
    """Check ``tree`` and rewrite it for the catalogue database (a copy is changed).

    ``database_columns``: the columns of this server's ``pg_database`` (they vary by version);
    ``relation_columns``: (schema, relation) → its (column, type name) of the catalogue relations
    that name roles, ACLs or the database (``neutral_columns`` replaces those columns).
    """
    if not isinstance(tree, exp.Query):
        raise CatalogueRefused("0A000", "only queries are answered from the catalogue")
    tree = tree.copy()
    for data_type in tree.find_all(exp.DataType):
        if data_type.sql("postgres").lower().split(".")[-1] in REFUSED_TYPES:
            raise CatalogueRefused("42501", "casts to regrole are not available through meshgov")
    # The user's own expressions first: the shadows below use current_database() themselves.
    for node in list(tree.find_all(exp.Func, exp.Column)):
        replacement = _session_value(node, principal_id, purpose, settings)
        if replacement is not None:
            # ``pg_catalog.f()`` parses as Dot(pg_catalog, f()): the whole call is replaced.
            parent = node.parent
            target = parent if isinstance(parent, exp.Dot) and parent.expression is node else node
            target.replace(replacement)
            continue
        if isinstance(node, exp.Func) and not _function_allowed(node):
            raise CatalogueRefused(
                "42501", f"function {function_name(node)}() is not available through meshgov"
            )
    for func in list(tree.find_all(exp.Anonymous)):
        if str(func.name).lower() == "pg_get_userbyid":
            # Role names are cluster-wide: every object here is owned by "meshgov".
            parent = func.parent
            target = parent if isinstance(parent, exp.Dot) else func
            target.replace(exp.cast(exp.Literal.string(OWNER_NAME), NAME_TYPE))
    replaced: set[str] = set()
    for table in list(tree.find_all(exp.Table)):
        name = table.name.lower()
        if not _is_catalogue_table(table):
            continue
        if name in REFUSED or name.startswith(REFUSED_PREFIXES):
            raise CatalogueRefused("42501", f"{name} is not available through meshgov")
        if name in SHADOWED:
            table.replace(shadow(table, name, purpose, database_columns))
            continue
        schema = table.db.lower() or "pg_catalog"
        columns = (relation_columns or {}).get((schema, name))
        if columns:
            table.replace(neutral_columns(table, schema, name, columns, purpose))
            replaced.add(name)
    # ``pg_catalog.pg_roles.rolname`` names the shadow by its table: drop the schema qualifier.
    for column in tree.find_all(exp.Column):
        if column.db and column.table.lower() in SHADOWED | replaced:
            column.set("db", None)
            column.set("catalog", None)
    return tree


def shadow(
    table: exp.Table, name: str, purpose: str, database_columns: Sequence[str]
) -> exp.Expression:
    """A cluster-wide catalogue as this session may see it, as an aliased subquery."""
    source = exp.table_(name, db="pg_catalog")
    alias = table.alias_or_name
    if name == "pg_database":
        # One database, named after the purpose the client connected with.
        columns: list[Any] = [
            exp.alias_(exp.cast(exp.Literal.string(purpose), NAME_TYPE), "datname")
            if column == "datname"
            else exp.column(column)
            for column in database_columns or ("oid", "datname")
        ]
        query = exp.select(*columns).from_(source).where("datname = current_database()")
    else:
        # Same columns, no rows (pg_authid and pg_shadow are not readable: pg_roles' shape).
        if name in {"pg_authid", "pg_shadow"}:
            source = exp.table_("pg_roles", db="pg_catalog")
        query = exp.select("*").from_(source).where(exp.false())
    return query.subquery(alias)


# Columns of catalogue relations that would name the server's roles or its real database.
ROLE_COLUMNS = {"schema_owner", "grantor", "grantee", "role_name", "authorization_identifier",
                "foreign_server_owner", "foreign_data_wrapper_owner", "sequence_owner",
                "user_name", "auth_user"}  # fmt: skip
SQL_IDENTIFIER = exp.DataType.build(
    "information_schema.sql_identifier", dialect="postgres", udt=True
)


ACLITEM = exp.DataType.build("aclitem", dialect="postgres", udt=True)
ACLITEM_ARRAY = exp.DataType(this=exp.DataType.Type.ARRAY, expressions=[ACLITEM], nested=True)


def is_neutralised(schema: str, column: str, type_name: str) -> bool:
    """Whether a catalogue column is replaced: an ACL (``relacl``: role names), a role name in
    ``information_schema`` or its catalogue (database) name."""
    if type_name in {"_aclitem", "aclitem"}:
        return True
    if schema != "information_schema":
        return False
    return column in ROLE_COLUMNS or column == "catalog_name" or column.endswith("_catalog")


def neutral_columns(
    table: exp.Table,
    schema: str,
    name: str,
    columns: Sequence[tuple[str, str]],
    purpose: str,
) -> exp.Expression:
    """The relation as an aliased subquery of the same columns, with role names shown as
    ``meshgov``, database names as the purpose and ACLs as NULL (default privileges)."""
    selected: list[exp.Expr] = []
    for column, type_name in columns:
        if not is_neutralised(schema, column, type_name):
            selected.append(exp.column(column, quoted=True))
            continue
        if type_name in {"_aclitem", "aclitem"}:
            kind = ACLITEM_ARRAY if type_name == "_aclitem" else ACLITEM
            value: exp.Expr = exp.cast(exp.null(), kind.copy())
        else:
            text = OWNER_NAME if column in ROLE_COLUMNS else purpose
            value = exp.cast(exp.Literal.string(text), SQL_IDENTIFIER)
        selected.append(exp.alias_(value, column, quoted=True))
    source = exp.table_(name, db=schema, quoted=True)
    return exp.select(*selected).from_(source).subquery(table.alias_or_name)


def _function_allowed(func: exp.Func) -> bool:
    if isinstance(func, exp.Anonymous):
        name = str(func.name).lower()
        if name in PRIVILEGE_ARITY and len(func.expressions) != PRIVILEGE_ARITY[name]:
            return False
        # Schema-qualified calls (pg_catalog.f) parse as anonymous even when sqlglot knows f.
        return name in ALLOWED_FUNCTIONS or (
            name.upper() in Postgres.Parser.FUNCTIONS and name not in REFUSED_FUNCTIONS
        )
    # Functions sqlglot knows are SQL's own (string, number, date, aggregates, casts…): with no
    # data in the catalogue database they can only compute on catalogue values.
    return function_name(func) not in REFUSED_FUNCTIONS


def _session_value(
    node: exp.Expr, principal_id: str, purpose: str, settings: Mapping[str, str]
) -> exp.Expression | None:
    """``current_user``, ``current_database()``, ``current_setting('x')`` → this session's."""
    if isinstance(node, exp.Column):
        if not node.table and node.name.lower() in SESSION_KEYWORDS:
            return exp.Literal.string(principal_id)
        return None
    if isinstance(node, exp.CurrentUser | exp.SessionUser):
        return exp.Literal.string(principal_id)
    if isinstance(node, exp.CurrentDatabase) or function_name(node) == "current_catalog":
        return exp.Literal.string(purpose)
    if isinstance(node, exp.CurrentVersion) or (
        isinstance(node, exp.Anonymous) and function_name(node) == "version"
    ):
        # The server's own version string names its build and platform: answer the version
        # meshgov reports to clients (ParameterStatus server_version), as PostgreSQL words it.
        return exp.Literal.string(f"PostgreSQL {settings.get('server_version', '')}".strip())
    if function_name(node) == "current_setting" and isinstance(node, exp.Anonymous):
        # Only this session's settings: the server's (port, listen_addresses, cluster_name,
        # paths…) are not the client's business; unknown ones are answered as SHOW answers them.
        args = node.expressions
        name = args[0] if args else None
        # A bound parameter arrives as a typed literal: CAST('x' AS VARCHAR) (SQLAlchemy).
        while isinstance(name, exp.Cast) and name.to.is_type(*exp.DataType.TEXT_TYPES):
            name = name.this
        if not (isinstance(name, exp.Literal) and name.is_string):
            raise CatalogueRefused("42501", "current_setting() takes a setting name literal here")
        key = name.name.lower()
        if key in settings:
            return exp.Literal.string(settings[key])
        if key in SERVER_SETTINGS_SHOWN:
            return None
        if key == "server_version_num" and "server_version" in settings:
            major, _, minor = settings["server_version"].split()[0].partition(".")
            return exp.Literal.string(f"{int(major) * 10000 + int(minor or 0)}")
        missing_ok = len(args) > 1 and args[1].sql("postgres").lower() in {"true", "'t'", "'true'"}
        if missing_ok:
            return exp.cast(exp.null(), exp.DataType.build("text"))
        raise CatalogueRefused("42704", f'unrecognized configuration parameter "{name.name}"')
    return None


# --------------------------------------------------------------------------- the database
@dataclass(frozen=True)
class CatalogueResult:
    """A catalogue answer: column (name, type OID, modifier) and raw values."""

    fields: tuple[tuple[str, int, int], ...]
    rows: list[list[bytes | None]]
    binary: bool


class CatalogueDatabases:
    """Creates (once per view) and queries the per-view PostgreSQL catalogue databases."""

    def __init__(self, admin_dsn: str, prefix: str = "meshgov_catalogue_") -> None:
        self.admin_dsn = admin_dsn
        self.prefix = prefix
        self._lock = threading.Lock()
        self._ready: set[str] = set()
        self._database_columns: tuple[str, ...] | None = None
        self._relation_columns: Mapping[tuple[str, str], Sequence[tuple[str, str]]] | None = None

    def database_columns(self) -> tuple[str, ...]:
        """The columns of this server's ``pg_database`` (they differ between versions)."""
        if self._database_columns is None:
            from meshgov.engines.postgres import connect

            try:
                with connect(self.admin_dsn) as admin:
                    rows = admin.execute(
                        "SELECT attname FROM pg_catalog.pg_attribute "
                        "WHERE attrelid = 'pg_catalog.pg_database'::regclass AND attnum > 0 "
                        "AND NOT attisdropped ORDER BY attnum"
                    ).fetchall()
            except psycopg.Error as exc:
                raise BackendUnavailable(
                    f"the governed catalogue is unavailable ({type(exc).__name__})"
                ) from None
            self._database_columns = ("oid", *(str(r[0]) for r in rows if r[0] != "oid"))
        return self._database_columns

    def relation_columns(self) -> Mapping[tuple[str, str], Sequence[tuple[str, str]]]:
        """(schema, relation) → (column, type name) of the catalogue relations with a column
        ``is_neutralised`` replaces, read once from the server (they vary by version)."""
        if self._relation_columns is None:
            from meshgov.engines.postgres import connect

            try:
                with connect(self.admin_dsn) as admin:
                    rows = admin.execute(
                        "SELECT n.nspname, c.relname, a.attname, t.typname "
                        "FROM pg_catalog.pg_attribute a "
                        "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
                        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                        "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
                        "WHERE n.nspname IN ('pg_catalog', 'information_schema') "
                        "AND c.relkind IN ('r', 'v') AND a.attnum > 0 AND NOT a.attisdropped "
                        "ORDER BY n.nspname, c.relname, a.attnum"
                    ).fetchall()
            except psycopg.Error as exc:
                raise BackendUnavailable(
                    f"the governed catalogue is unavailable ({type(exc).__name__})"
                ) from None
            found: dict[tuple[str, str], list[tuple[str, str]]] = {}
            for schema, relation, column, type_name in rows:
                found.setdefault((str(schema), str(relation)), []).append(
                    (str(column), str(type_name))
                )
            self._relation_columns = {
                key: tuple(columns)
                for key, columns in found.items()
                if any(is_neutralised(key[0], c, t) for c, t in columns)
            }
        return self._relation_columns

    def database_for(self, view: VisibleCatalogue) -> str:
        """The database of ``view``, created with its empty tables when new."""
        name = f"{self.prefix}{view.fingerprint}"[:63]
        with self._lock:
            if name in self._ready:
                return name
            try:
                self._create(name, view)
            except psycopg.Error as exc:
                raise BackendUnavailable(
                    f"the governed catalogue database could not be prepared ({type(exc).__name__})"
                ) from None
            self._ready.add(name)
            return name

    def _create(self, name: str, view: VisibleCatalogue) -> None:
        from meshgov.engines.postgres import connect, dsn_for_database

        with connect(self.admin_dsn, autocommit=True) as admin:
            found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone() is not None:
                return
            role = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER_ROLE,))
            if role.fetchone() is None:
                with contextlib.suppress(psycopg.errors.DuplicateObject):  # made concurrently
                    admin.execute(
                        sql.SQL(
                            "CREATE ROLE {} NOLOGIN NOSUPERUSER NOINHERIT NOCREATEDB NOCREATEROLE "
                            "NOREPLICATION NOBYPASSRLS"
                        ).format(sql.Identifier(READER_ROLE))
                    )
            building = f"{name}_building"[:63]
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(building)))
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(building))
            )
        with connect(dsn_for_database(self.admin_dsn, building)) as conn:
            for statement in _catalogue_ddl(view):
                conn.execute(statement)
            conn.commit()
        with connect(self.admin_dsn, autocommit=True) as admin:
            # Built under another name and renamed: a half-built database is never served.
            try:
                admin.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(building), sql.Identifier(name)
                    )
                )
            except psycopg.errors.DuplicateDatabase:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(building))
                )

    def connect(self, database: str) -> psycopg.Connection[Any]:
        """A read-only connection to ``database`` as the unprivileged catalogue role."""
        from meshgov.engines.postgres import connect, dsn_for_database

        conn = connect(dsn_for_database(self.admin_dsn, database), autocommit=True)
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(READER_ROLE)))
        conn.execute("SET default_transaction_read_only = on")
        conn.execute("SET statement_timeout = '5s'")
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier("public")))
        return conn

    def run(self, conn: psycopg.Connection[Any], query: str, binary: bool) -> CatalogueResult:
        """Run one checked, regenerated catalogue query; PostgreSQL's own types and values."""
        result = conn.pgconn.exec_params(query.encode(), [], result_format=1 if binary else 0)
        status = result.status
        if status == pq.ExecStatus.TUPLES_OK or status == pq.ExecStatus.COMMAND_OK:
            fields = tuple(
                (
                    (result.fname(i) or b"?column?").decode(),
                    result.ftype(i),
                    result.fmod(i),
                )
                for i in range(result.nfields)
            )
            rows = [
                [result.get_value(r, c) for c in range(result.nfields)]
                for r in range(result.ntuples)
            ]
            return CatalogueResult(fields, rows, binary)
        sqlstate = (result.error_field(pq.DiagnosticField.SQLSTATE) or b"XX000").decode()
        message = (result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode()
        raise CatalogueRefused(sqlstate, message or "catalogue query failed")

    def drop_all(self) -> None:
        """Drop every catalogue database of this prefix (tests; a new catalogue revision)."""
        from meshgov.engines.postgres import connect

        with connect(self.admin_dsn, autocommit=True) as admin:
            names = admin.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (self.prefix,)
            ).fetchall()
            for (name,) in names:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        with self._lock:
            self._ready.clear()


def _catalogue_ddl(view: VisibleCatalogue) -> Sequence[Any]:
    """Statements that build one view's database: empty tables, shadow catalogues, grants."""
    role = sql.Identifier(READER_ROLE)
    statements: list[Any] = [
        sql.SQL("REVOKE ALL ON SCHEMA public FROM PUBLIC"),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role),
    ]
    for schema in sorted({t.schema for t in view.tables} - {"public"}):
        statements.append(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        statements.append(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), role)
        )
    for table in view.tables:
        create = exp.Create(
            this=exp.Schema(
                this=exp.table_(table.name, db=table.schema, quoted=True),
                expressions=[
                    exp.ColumnDef(
                        this=exp.to_identifier(column, quoted=True),
                        kind=exp.DataType.build(type_text, dialect="postgres"),
                    )
                    for column, type_text in table.columns
                ],
            ),
            kind="TABLE",
        )
        statements.append(sql.SQL(create.sql("postgres")))
        statements.append(
            sql.SQL("GRANT SELECT ON {}.{} TO {}").format(
                sql.Identifier(table.schema), sql.Identifier(table.name), role
            )
        )
    return statements
