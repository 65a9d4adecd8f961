"""Policy engines (implementations of ``meshgov.core.policy.PolicyEngine``) and bundle loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meshgov.core.policy import PolicyBundle, PolicyEngine
from meshgov.core.registry import validate_registry
from meshgov.core.yaml_source import SourceDocument, load_yaml
from meshgov.errors import InputError, Location, PolicyCompileError

DATA_DIR = "data"


def load_bundle_dir(root: str | Path) -> PolicyBundle:
    """Read every ``*.rego`` under ``root`` and every JSON/YAML file under ``root/data``.

    Data files are mounted at ``data.registry.<file stem>``.
    """
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"policy directory not found: {base}", Location(file=str(base)))
    modules: dict[str, str] = {}
    for path in sorted(base.rglob("*.rego")):
        rel = path.relative_to(base).as_posix()
        try:
            modules[rel] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise PolicyCompileError("not valid UTF-8", Location(file=rel)) from None
    registry: dict[str, Any] = {}
    docs: dict[str, SourceDocument] = {}
    data_dir = base / DATA_DIR
    if data_dir.is_dir():
        for path in sorted(data_dir.iterdir()):
            if path.suffix not in {".json", ".yaml", ".yml"}:
                continue
            rel = path.relative_to(base).as_posix()
            try:
                text = path.read_text(encoding="utf-8")
                # The same guarded loader as manifests and uploaded data files (size, aliases).
                if path.suffix == ".json":
                    doc = SourceDocument(json.loads(text), rel)
                else:
                    doc = load_yaml(text, rel)
            except ValueError as exc:
                raise PolicyCompileError(f"invalid data file: {exc}", Location(file=rel)) from None
            except InputError as exc:
                raise PolicyCompileError(
                    f"invalid data file: {exc.message}", exc.location or Location(file=rel)
                ) from None
            registry[path.stem], docs[path.stem] = doc.data, doc
    if not modules:
        raise InputError(f"no .rego files under {base}", Location(file=str(base)))
    try:
        validate_registry(registry, docs)
    except InputError as exc:
        raise PolicyCompileError(f"invalid data file: {exc.message}", exc.location) from None
    return PolicyBundle.create(modules, {"registry": registry})


ENGINE_NAMES = ("auto", "embedded", "regorus")


def regorus_installed() -> bool:
    from meshgov.policy_backends.regorus import installed

    return installed()


def engine_from_url(url: str | None) -> PolicyEngine:
    """``auto`` → regorus when the extra ``meshgov[regorus]`` is installed, else regopy (see
    docs/deploy.md, "Choosing the policy engine"); ``None``/``embedded`` → regopy in-process;
    ``regorus`` → regorus in-process; ``opa+http://host:port`` → an OPA server."""
    if url == "auto":
        url = "regorus" if regorus_installed() else "embedded"
    if not url or url == "embedded":
        from meshgov.policy_backends.embedded import EmbeddedEngine

        return EmbeddedEngine()
    if url == "regorus":
        from meshgov.policy_backends.regorus import RegorusEngine

        return RegorusEngine()
    if url.startswith(("opa+http://", "opa+https://")):
        from meshgov.policy_backends.opa_server import OpaServerEngine  # type: ignore[import-not-found,unused-ignore]

        engine: PolicyEngine = OpaServerEngine(url.removeprefix("opa+"))
        return engine
    raise InputError(
        f"unknown policy engine {url!r}; use 'auto', 'embedded', 'regorus' or "
        "'opa+http://host:port'"
    )


def engine_label(engine: PolicyEngine) -> str:
    """``name version`` of an engine, for the places that show which engine decided."""
    version = getattr(engine, "version", "")
    return f"{engine.name} {version}".strip()
