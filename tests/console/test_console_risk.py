"""The re-identification risk answer, computed in the background once per serving state, is the
answer the risk analysis gives when run directly (the console's previous implementation), on the
example mesh and on a generated one; a page asked before it is ready shows its progress."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_http import logged_in
from console_server import ROOT, ConsoleServer

from meshgov.config import Settings
from meshgov.console import drawing, graph_views, visibility
from meshgov.core.graph import (
    policy_access,
    principal_view,
    quasi_identifier_policy,
    reidentification_risk,
)
from meshgov.core.graph.questions import plain
from meshgov.core.principal import Principal
from meshgov.service import Service

CONSUMER = """\
apiVersion: meshgov/v1
kind: DataProduct
metadata: {{domain: {domain}, name: {name}, version: 1.0.0, owner: {domain}@acme.example,
  status: active}}
spec:
  inputs: [{{product: customer/customers, port: customers}}]
  outputPorts:
    - name: {name}
      kind: table
      table: {domain}.{name}
      columns:
        - {{name: client_ref, type: string, entity: customer, classification: internal,
           mask: {id_mask}, pii: {id_pii}}}
        - {{name: {qi}, type: string, classification: {qi_class}}}
        - {{name: gender, type: string, classification: internal}}
  access:
    grants:
      - to: {{groups: [{group}]}}
        purposes: [{purpose}]
"""
QIS = ["postcode", "birth_year", "zip", "occupation"]
GROUPS = ["analysts", "fraud", "marketing-owners"]
PURPOSES = ["analytics", "fraud_detection", "marketing"]


def _previous(service: Service, principal: Principal, purpose: str | None) -> dict[str, Any]:
    """The console's risk answer as it was computed before (synchronously, in the request)."""
    state = service.state
    config = state.bundle.data["registry"]["quasi_identifiers"]
    view = principal_view(
        {
            "id": principal.id,
            "groups": list(principal.groups),
            "domain": principal.domain,
            "attributes": dict(principal.attributes),
        },
        purpose,
    )
    gateway = state.gateway
    access = policy_access(
        lambda p, product, port: gateway.decide(principal, p, product, port), purpose
    )
    report = plain(
        reidentification_risk(
            graph_views.graph_of(state), view, quasi_identifier_policy(config), access, "policy"
        )
    )
    return {"data": report, "drawing": drawing.risk_drawing("/ui", report)}


def _generated_mesh(root: Path, count: int) -> Path:
    mesh = root / "mesh"
    shutil.copytree(ROOT / "examples" / "mesh", mesh, ignore=shutil.ignore_patterns("principals"))
    for i in range(count):
        domain, name = f"gen{i % 5}", f"p{i:03d}"
        path = mesh / "generated" / domain / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            CONSUMER.format(
                domain=domain,
                name=name,
                qi=QIS[i % len(QIS)],
                qi_class="restricted" if i % 7 == 0 else "internal",
                id_mask="hash" if i % 3 == 0 else "null",
                id_pii="true" if i % 2 == 0 else "false",
                group=GROUPS[i % len(GROUPS)],
                purpose=PURPOSES[(i // 3) % len(PURPOSES)],
            ),
            encoding="utf-8",
        )
    return mesh


@pytest.fixture(scope="module", params=["example", "generated"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("risk")
    mesh = ROOT / "examples" / "mesh" if request.param == "example" else _generated_mesh(tmp, 120)
    settings = Settings(
        catalog_dir=mesh,
        policies_dir=ROOT / "policies",
        store_url=f"sqlite:///{tmp / 'meshgov.db'}",
        tokens_file=ROOT / "examples" / "tokens.yaml",
    )
    svc = Service(settings)
    svc.start()
    try:
        yield svc
    finally:
        svc.close()


PRINCIPALS = [
    Principal(id="analyst-eu", groups=("analysts",), domain="analytics",
              attributes={"region": "EU", "clearances": []}),
    Principal(id="fraud-investigator", groups=("fraud",), domain="payments",
              attributes={"region": "EU", "clearances": ["pii"]}),
    Principal(id="owner-marketing", groups=("marketing-owners",), domain="marketing",
              attributes={"clearances": ["restricted"]}),
]  # fmt: skip


@pytest.mark.parametrize("purpose", [None, "analytics", "fraud_detection"])
@pytest.mark.parametrize("who", PRINCIPALS, ids=lambda p: p.id)
def test_the_background_answer_is_the_direct_one(
    service: Service, who: Principal, purpose: str | None
) -> None:
    state = service.state
    job = graph_views.risk_job(state, "/ui", who, purpose)
    answer = job.future.result(timeout=120)
    assert answer == _previous(service, who, purpose)
    total = sum(len(m.spec.output_ports) for m in state.catalog.manifests.values())
    assert job.progress.done == job.progress.total == total
    # Asked again on the same state: the same job, not a second computation.
    assert graph_views.risk_job(state, "/ui", who, purpose) is job


def test_a_risk_answer_not_ready_shows_its_progress_and_the_page_reloads(
    own_console: ConsoleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshgov.console import pages_graph

    monkeypatch.setattr(pages_graph, "RISK_WAIT_S", 0.0)
    # The worker is busy with another answer until released: this one has to wait its turn.
    busy = threading.Event()
    visibility.BACKGROUND.submit(busy.wait, 60)
    with logged_in(own_console, "fraud-investigator") as client:
        first = client.get("/ui/graph", params={"question": "risk"}).text
        busy.set()
        graph_views.risk_job(
            own_console.service.state,
            "/ui",
            next(p for p in own_console.service.principals if p.id == "fraud-investigator"),
            None,
        ).future.result(timeout=60)
        ready = client.get("/ui/graph", params={"question": "risk"}).text
    assert '<meta http-equiv="refresh" content="1">' in first
    assert "0 of 8 ports decided" in first and 'id="answer-table"' not in first
    assert 'id="risk-progress"' not in ready and 'http-equiv="refresh"' not in ready
    assert 'id="answer-table"' in ready
