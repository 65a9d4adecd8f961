"""`meshgov graph …`: questions asked of the entity linkage graph, and its pictures.

Every subcommand reads the catalog (``--catalog DIR``) and the guild's registry
(``--policies DIR``: ``data/entities.yaml`` and ``data/quasi_identifiers.yaml``) and prints JSON
or text on stdout. Exit codes: 0 answered, 1 ``risk`` found risky combinations, 2 bad input.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from meshgov.cli._common import EXIT_VIOLATIONS, err_console, reports_errors
from meshgov.errors import InputError, Location, MeshgovError

if TYPE_CHECKING:
    from meshgov.core.graph import AccessView, EntityGraph

app = typer.Typer(
    help="The entity linkage graph: entities, join paths, lineage, impact, PII flow, risk.",
    no_args_is_help=True,
)


class OutputFormat(StrEnum):
    json = "json"
    text = "text"


class ExportFormat(StrEnum):
    json = "json"
    graphml = "graphml"
    html = "html"


CatalogOption = typer.Option(
    None, "--catalog", "-c", help="Directory of product manifests (default: the current one)."
)
PoliciesOption = typer.Option(
    None,
    "--policies",
    "-p",
    help="Policy directory whose data/ holds entities.yaml (default: ./policies if present).",
)
FormatOption = typer.Option(OutputFormat.text, "--format", "-f", help="json or text.")


def _read_data_file(policies: Path, stem: str) -> Any:
    from meshgov.core.yaml_source import decode_text, load_yaml

    for suffix in (".yaml", ".yml", ".json"):
        path = policies / "data" / f"{stem}{suffix}"
        if path.is_file():
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read: {exc.strerror}", Location(file=str(path))) from None
            return load_yaml(decode_text(raw, str(path)), str(path)).data
    return None


@app.callback()
def graph_group(
    ctx: typer.Context,
    catalog: Path | None = CatalogOption,
    policies: Path | None = PoliciesOption,
) -> None:
    """The entity linkage graph: entities, join paths, lineage, impact, PII flow, risk."""
    # `meshgov graph --catalog DIR entities` and `meshgov graph entities --catalog DIR` both work.
    ctx.obj = {"catalog": catalog, "policies": policies}


def _group_option(ctx: typer.Context, name: str) -> Path | None:
    options = ctx.find_object(dict)
    value = options.get(name) if options else None
    return value if isinstance(value, Path) else None


def _catalog_dir(ctx: typer.Context, catalog: Path | None) -> Path:
    return catalog or _group_option(ctx, "catalog") or Path(".")


def _policies_dir(ctx: typer.Context, policies: Path | None) -> Path | None:
    policies = policies or _group_option(ctx, "policies")
    if policies is None:
        default = Path("policies")
        return default if default.is_dir() else None
    if not policies.is_dir():
        raise InputError(f"policy directory not found: {policies}", Location(file=str(policies)))
    return policies


def _registry(ctx: typer.Context, policies: Path | None) -> Any:
    directory = _policies_dir(ctx, policies)
    return _read_data_file(directory, "entities") if directory else None


def _load_graph(ctx: typer.Context, catalog: Path | None, policies: Path | None) -> EntityGraph:
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from meshgov.catalog import load_manifest, manifest_paths
    from meshgov.core.graph import build_graph

    defaulted = (catalog or _group_option(ctx, "catalog")) is None
    catalog = _catalog_dir(ctx, catalog)
    if not catalog.is_dir():
        raise InputError(f"catalog directory not found: {catalog}", Location(file=str(catalog)))
    registry = _registry(ctx, policies)
    paths = manifest_paths([catalog])
    if defaulted and not paths:
        raise InputError(
            f"no --catalog given, and the current directory ({catalog.resolve()}) holds no "
            "product manifests: pass --catalog DIR"
        )
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as progress:
        task = progress.add_task("reading manifests", total=len(paths))
        manifests = []
        for path in paths:
            try:
                manifests.append(load_manifest(path))
            except MeshgovError as exc:
                if not defaulted:
                    raise
                raise InputError(
                    f"no --catalog given, so the current directory ({catalog.resolve()}) is read "
                    f"as the catalogue, and this file is not a product manifest ({exc.message}): "
                    "pass --catalog DIR",
                    exc.location or Location(file=str(path)),
                ) from None
            progress.advance(task)
        progress.update(task, description="building the graph")
        return build_graph(manifests, registry)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items) if isinstance(value, set | frozenset) else items
    return value


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(_plain(value), indent=2, ensure_ascii=False))


@app.command("entities")
@reports_errors
def entities_command(
    ctx: typer.Context,
    catalog: Path | None = CatalogOption,
    policies: Path | None = PoliciesOption,
    output: OutputFormat = FormatOption,
) -> None:
    """Each entity, its owner, and every product/port/column that carries it."""
    from meshgov.core.graph import entities

    result = entities(_load_graph(ctx, catalog, policies))
    if output is OutputFormat.json:
        _print_json([{**_plain(e), "products": list(e.products)} for e in result])
        return
    for entity in result:
        owner = entity.owner_product or entity.owner_domain or "no owner (unregistered)"
        canonical = (
            f"{entity.canonical_name}: {entity.canonical_type}" if entity.canonical_name else "-"
        )
        typer.echo(f"{entity.name}  owner {owner}  canonical {canonical}")
        if entity.aliases:
            typer.echo(f"  also known as {', '.join(entity.aliases)}")
        for c in entity.carriers:
            note = " (mapped)" if c.mapping == "mapped" else ""
            typer.echo(f"  {c.product}:{c.port}:{c.column}{note}")


@app.command("paths")
@reports_errors
def paths_command(
    ctx: typer.Context,
    left: str = typer.Argument(..., help="First product, domain/name."),
    right: str = typer.Argument(..., help="Second product, domain/name."),
    max_hops: int = typer.Option(3, "--max-hops", help="Longest join chain to consider."),
    limit: int = typer.Option(10, "--limit", help="At most this many paths."),
    catalog: Path | None = CatalogOption,
    policies: Path | None = PoliciesOption,
    output: OutputFormat = FormatOption,
) -> None:
    """The ways to join two products through shared entity ids, shortest first."""
    from meshgov.core.graph import join_paths

    result = join_paths(
        _load_graph(ctx, catalog, policies), left, right, max_hops=max_hops, limit=limit
    )
    if output is OutputFormat.json:
        _print_json([{**_plain(p), "hops": p.hops} for p in result])
        return
    if not result:
        typer.echo(f"no join path between {left} and {right} within {max_hops} hops")
    for path in result:
        typer.echo(f"{path.hops} hop{'s' if path.hops > 1 else ''} via {' → '.join(path.entities)}")
        for step in path.steps:
            typer.echo(
                f"  {step.left_product} [{', '.join(step.left_columns)}] ⋈ "
                f"{step.right_product} [{', '.join(step.right_columns)}] on {step.entity}"
            )


@app.command("lineage")
@reports_errors
def lineage_command(
    ctx: typer.Context,
    product: str = typer.Argument(..., help="Product, domain/name."),
    upstream: bool = typer.Option(False, "--upstream", help="What the product reads (default)."),
    downstream: bool = typer.Option(False, "--downstream", help="What reads the product."),
    catalog: Path | None = CatalogOption,
    policies: Path | None = PoliciesOption,
    output: OutputFormat = FormatOption,
) -> None:
    """Products upstream (default) or downstream of a product, with depth and owner."""
    from meshgov.core.graph import Direction, lineage

    if upstream and downstream:
        raise InputError("choose one of --upstream and --downstream")
    direction = Direction.downstream if downstream else Direction.upstream
    result = lineage(_load_graph(ctx, catalog, policies), product, direction)
    if output is OutputFormat.json:
        _print_json(result)
        return
    typer.echo(f"{direction.value} of {product}:")
    if not result.nodes:
        typer.echo("  (none)")
    for node in result.nodes:
        note = "" if node.declared else "  (not in the catalog)"
        typer.echo(
            f"  {'  ' * (node.depth - 1)}{node.depth} {node.product}  {node.owner or ''}{note}"
        )


@app.command("impact")
@reports_errors
def impact_command(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="domain/name[:port[:column]]"),
    catalog: Path | None = CatalogOption,
    policies: Path | None = PoliciesOption,
    output: OutputFormat = FormatOption,
) -> None:
    """What may break downstream if the target changes, and which owners to notify."""
    from meshgov.core.graph import impact

    result = impact(_load_graph(ctx, catalog, policies), target)
    if output is OutputFormat.json:
        _print_json(result)
        return
    typer.echo(f"changing {target} affects {len({i.product for i in result.items})} product(s):")
    for item in result.items:
        where = item.product + "".join(f":{p}" for p in (item.port, item.column) if p)
        typer.echo(f"  depth {item.depth}  {where}  (via {item.via}, {item.precision})")
    if result.owners:
        typer.echo("notify:")
    for owner in result.owners:
        typer.echo(f"  {owner.owner or '(no owner)'}  [{owner.domain}] {', '.join(owner.products)}")


@app.command("pii")
@reports_errors
def pii_command(
    ctx: typer.Context,
    catalog: Path | None = CatalogOption,
    policies: Path | None = PoliciesOption,
    output: OutputFormat = FormatOption,
) -> None:
    """Products that declare no PII but read PII upstream, with the path it took."""
    from meshgov.core.graph import pii_flows

    result = pii_flows(_load_graph(ctx, catalog, policies))
    if output is OutputFormat.json:
        _print_json(result)
        return
    if not result:
        typer.echo("no product reads PII without declaring it")
    for flow in result:
        typer.echo(f"{flow.product} declares no PII but reads:")
        for source in flow.sources:
            typer.echo(f"  {', '.join(source.columns)}  path {' → '.join(source.path)}")


class AccessModel(StrEnum):
    auto = "auto"
    policy = "policy"
    grants = "grants"


def _has_access_policy(directory: Path | None) -> bool:
    return directory is not None and (directory / "meshgov" / "access").is_dir()


def _policy_access(
    graph: EntityGraph, directory: Path, principal_text: str, source: str, purpose: str | None
) -> AccessView:
    """Port views from the access policy's decisions (``core.graph.policy_access``)."""
    from meshgov.catalog import Catalog
    from meshgov.core.graph import policy_access
    from meshgov.core.principal import parse_principal
    from meshgov.gateway import Gateway
    from meshgov.policy_backends import load_bundle_dir

    principal = parse_principal(principal_text, source)
    gateway = Gateway(
        Catalog.from_manifests(graph.index.manifests.values()), load_bundle_dir(directory)
    )
    return policy_access(
        lambda p, product, port: gateway.decide(principal, p, product, port),
        purpose or principal.purpose,
    )


@app.command("risk")
@reports_errors
def risk_command(
    ctx: typer.Context,
    principal: Path = typer.Option(..., "--principal", help="Principal YAML/JSON file."),
    purpose: str | None = typer.Option(
        None, "--purpose", help="Purpose of the access (default: every purpose granted)."
    ),
    access: AccessModel = typer.Option(
        AccessModel.auto,
        "--access",
        help="policy: the access policy's decisions; grants: approximate from the manifests' "
        "grants; auto: policy when --policies has meshgov/access.",
    ),
    catalog: Path | None = CatalogOption,
    policies: Path | None = PoliciesOption,
    output: OutputFormat = FormatOption,
) -> None:
    """Quasi-identifiers the principal can combine by joining on shared entity ids."""
    from meshgov.core.graph import principal_view, quasi_identifier_policy, reidentification_risk
    from meshgov.core.yaml_source import decode_text, load_yaml

    directory = _policies_dir(ctx, policies)
    config = _read_data_file(directory, "quasi_identifiers") if directory else None
    if config is None:
        raise InputError(
            "no quasi-identifier list: expected data/quasi_identifiers.yaml under --policies"
        )
    if not principal.is_file():
        raise InputError("principal file not found", Location(file=str(principal)))
    text = decode_text(principal.read_bytes(), str(principal))
    view = principal_view(load_yaml(text, str(principal)).data, purpose)
    graph = _load_graph(ctx, catalog, policies)
    use_policy = access is AccessModel.policy or (
        access is AccessModel.auto and _has_access_policy(directory)
    )
    if use_policy and (directory is None or not _has_access_policy(directory)):
        raise InputError("--access policy needs --policies with the meshgov/access package")
    access_view = (
        _policy_access(graph, directory, text, str(principal), purpose)
        if use_policy and directory is not None
        else None
    )
    report = reidentification_risk(
        graph,
        view,
        quasi_identifier_policy(config),
        access_view,
        "policy" if access_view else "grants",
    )
    if output is OutputFormat.json:
        _print_json(report)
    else:
        typer.echo(
            f"principal {report.principal} reads {len(report.visible_products)} product(s) "
            f"(access from {report.access_model}); risky at {report.threshold} quasi-identifiers"
        )
        if not report.findings:
            typer.echo("no risky combination of quasi-identifiers is joinable")
        for finding in report.findings:
            how = "across products" if finding.cross_product else "(one product alone suffices)"
            typer.echo(
                f"joining on {finding.entity}: {' + '.join(finding.quasi_identifiers)} {how}"
            )
            for exposed in finding.exposed:
                note = " (generalised by its mask)" if exposed.generalised else ""
                typer.echo(
                    f"  {exposed.name}: {exposed.product}:{exposed.port}:{exposed.column}{note}"
                )
    if report.findings:
        raise typer.Exit(EXIT_VIOLATIONS)


@app.command("export")
@reports_errors
def export_command(
    ctx: typer.Context,
    export_format: ExportFormat = typer.Option(
        ExportFormat.json, "--format", "-f", help="json, graphml or html."
    ),
    output_file: Path | None = typer.Option(None, "-o", "--output", help="File (default stdout)."),
    catalog: Path | None = CatalogOption,
    policies: Path | None = PoliciesOption,
) -> None:
    """The whole graph as node-link JSON, GraphML, or one self-contained HTML picture."""
    from meshgov import graph_export

    graph = _load_graph(ctx, catalog, policies)
    if export_format is ExportFormat.json:
        text = json.dumps(graph_export.to_json(graph), indent=2, ensure_ascii=False)
    elif export_format is ExportFormat.graphml:
        text = graph_export.to_graphml(graph)
    else:
        text = graph_export.to_html(
            graph, title=f"meshgov · {_catalog_dir(ctx, catalog).resolve().name}"
        )
    if output_file is None:
        typer.echo(text)
        return
    data = text.encode("utf-8")
    try:
        output_file.write_bytes(data)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", Location(file=str(output_file))) from None
    err_console.print(f"wrote {output_file} ({len(data):,} bytes)")
