"""`meshgov graph …` through Typer's CliRunner, and the HTML picture in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshgov.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "graph"
MESH = ["--catalog", str(FIXTURES / "mesh"), "--policies", str(FIXTURES / "policies")]

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["graph", *args])
    return result.exit_code, result.stdout, result.stderr


def test_entities_json_lists_carriers() -> None:
    code, out, _ = _run("entities", *MESH, "--format", "json")
    assert code == 0
    customer = next(e for e in json.loads(out) if e["name"] == "customer")
    assert customer["owner_product"] == "customer/customers"
    assert customer["products"] == [
        "commerce/orders",
        "customer/customers",
        "marketing/campaign_audience",
        "marketing/customer_360",
        "payments/payments",
    ]


def test_paths_text_names_entities_and_columns() -> None:
    code, out, _ = _run("paths", "payments/payments", "marketing/campaign_audience", *MESH)
    assert code == 0
    assert out.splitlines()[:2] == [
        "1 hop via customer",
        "  payments/payments [payments:cust_ref] ⋈ marketing/campaign_audience "
        "[audience:client_id] on customer",
    ]
    assert "2 hops via order → customer" in out


def test_paths_json_hops() -> None:
    code, out, _ = _run(
        "paths", "commerce/products", "customer/customers", *MESH, "--format", "json"
    )
    assert code == 0
    assert [p["hops"] for p in json.loads(out)] == [3, 3]


def test_lineage_downstream_json() -> None:
    code, out, _ = _run("lineage", "customer/customers", "--downstream", *MESH, "-f", "json")
    assert code == 0
    nodes = json.loads(out)["nodes"]
    assert [(n["product"], n["depth"]) for n in nodes] == [
        ("commerce/orders", 1),
        ("marketing/campaign_audience", 1),
        ("marketing/customer_360", 1),
        ("commerce/order_items", 2),
        ("marketing/segment_report", 2),
        ("payments/payments", 2),
    ]


def test_lineage_rejects_both_directions() -> None:
    code, _, err = _run("lineage", "customer/customers", "--upstream", "--downstream", *MESH)
    assert code == 2
    assert "choose one" in err


def test_impact_text_lists_owners_to_notify() -> None:
    code, out, _ = _run("impact", "payments/payments:payments:amount", *MESH)
    assert code == 0
    assert "marketing/customer_360:customer_360:lifetime_value" in out
    assert out.splitlines()[-1] == "  marketing@acme.example  [marketing] marketing/customer_360"
    assert "notify:" in out


def test_pii_json_paths() -> None:
    code, out, _ = _run("pii", *MESH, "--format", "json")
    assert code == 0
    flows = {f["product"]: f for f in json.loads(out)}
    assert sorted(flows) == ["commerce/order_items", "commerce/orders", "marketing/segment_report"]
    assert flows["marketing/segment_report"]["sources"][0]["path"] == [
        "marketing/customer_360:customer_360",
        "marketing/segment_report",
    ]


def test_risk_exits_1_on_risky_combinations_and_0_otherwise() -> None:
    code, out, _ = _run("risk", "--principal", str(FIXTURES / "principals" / "analyst.yaml"), *MESH)
    assert code == 1
    assert "joining on customer: birth_date + gender + postcode across products" in out
    code, out, _ = _run("risk", "--principal", str(FIXTURES / "principals" / "nobody.yaml"), *MESH)
    assert code == 0
    assert "no risky combination" in out


def test_risk_json_report() -> None:
    principal = str(FIXTURES / "principals" / "fraud.yaml")
    code, out, _ = _run("risk", "--principal", principal, *MESH, "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["principal"] == "fred"
    assert [f["entity"] for f in report["findings"]] == ["customer"]


def test_export_json_and_graphml(tmp_path: Path) -> None:
    code, out, _ = _run("export", "--format", "json", *MESH)
    assert code == 0
    data = json.loads(out)
    assert data["stats"]["nodes"]["product"] == 8
    assert {"source", "target", "kind"} <= set(data["edges"][0])
    target = tmp_path / "mesh.graphml"
    code, _, err = _run("export", "--format", "graphml", "-o", str(target), *MESH)
    assert code == 0
    assert "wrote" in err
    root = ET.parse(target).getroot()
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    assert len(root.findall(".//g:node", ns)) == 59
    assert len(root.findall(".//g:edge", ns)) == 79


def test_bad_input_is_exit_2_with_one_line() -> None:
    code, _, err = _run("impact", "nope/nothing", *MESH)
    assert code == 2
    assert "no product 'nope/nothing'" in err
    code, _, err = _run("entities", "--catalog", "/nonexistent/mesh")
    assert code == 2
    assert "catalog directory not found" in err
    code, _, err = _run("risk", "--principal", "/nonexistent.yaml", *MESH)
    assert code == 2
    assert "principal file not found" in err


def test_export_reports_the_bytes_written(tmp_path: Path) -> None:
    target = tmp_path / "mesh.html"
    code, _, err = _run("export", "--format", "html", "-o", str(target), *MESH)
    assert code == 0
    size = target.stat().st_size
    assert len(target.read_text(encoding="utf-8")) < size  # non-ASCII: characters ≠ bytes
    assert f"({size:,} bytes)" in " ".join(err.split())


def test_without_catalog_the_current_directory_must_hold_manifests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _run("impact", "customer/customers:customers:email")
    assert code == 2
    assert "no --catalog given" in err and "holds no product manifests" in err
    assert "pass --catalog DIR" in " ".join(err.split())
    # A JSON schema that mentions the manifest keys (as the ODCS schemas in src/ do).
    schema = '{"properties": {"apiVersion": {"type": "string"}}, "title": "DataContract"}'
    (tmp_path / "schema.json").write_text(schema, encoding="utf-8")
    code, _, err = _run("impact", "customer/customers:customers:email")
    assert code == 2
    flat = " ".join(err.split())
    assert "schema.json" in flat and "no --catalog given" in flat
    assert "is not a product manifest" in flat and "pass --catalog DIR" in flat
    # Given explicitly, a directory's bad file is reported as before (no hint about defaults).
    code, _, err = _run("impact", "customer/customers:customers:email", "--catalog", ".")
    assert code == 2
    assert "no --catalog given" not in err


def test_html_export_is_self_contained(tmp_path: Path) -> None:
    target = tmp_path / "mesh.html"
    code, _, _ = _run("export", "--format", "html", "-o", str(target), *MESH)
    assert code == 0
    page = target.read_text()
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "").replace(
        "http://graphml", ""
    )
    assert "https://" not in page
    assert page.count('class="product') == 8
    assert page.count('class="product has-pii"') == 4
    assert 'class="col pii"' in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.browser
def test_html_export_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    page = tmp_path / "mesh.html"
    code, _, _ = _run("export", "--format", "html", "-o", str(page), *MESH)
    assert code == 0
    # --dump-dom prints the DOM after scripts ran: the page's script marks what it rendered.
    dom = subprocess.run(
        [browser, *CHROMIUM_FLAGS, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout
    assert 'data-rendered="8"' in dom
    shot = tmp_path / "mesh.png"
    subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--screenshot={shot}", "--window-size=1400,900", page.as_uri()],
        capture_output=True,
        timeout=90,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a blank page is a few kB


def test_risk_with_the_access_policy_on_the_example_mesh(
    mesh_dir: Path, policies_dir: Path
) -> None:
    if not (mesh_dir.is_dir() and (policies_dir / "meshgov" / "access").is_dir()):
        pytest.skip("examples/mesh or the access policy is not present")
    example = ["--catalog", str(mesh_dir), "--policies", str(policies_dir), "-f", "json"]
    fraud = str(mesh_dir / "principals" / "fraud-investigator.yaml")
    code, out, _ = _run("risk", "--principal", fraud, *example)
    assert code == 1
    report = json.loads(out)
    assert report["access_model"] == "policy"
    assert [
        (f["entity"], f["quasi_identifiers"], f["cross_product"]) for f in report["findings"]
    ] == [("customer", ["birth_date", "gender", "postcode"], False)]
    # Analysts get birth_date generalised to a year and postcode redacted: not enough to join.
    analyst = str(mesh_dir / "principals" / "analyst-eu.yaml")
    code, out, _ = _run("risk", "--principal", analyst, *example)
    assert code == 0
    assert json.loads(out)["findings"] == []


def test_risk_access_policy_needs_the_access_package() -> None:
    principal = str(FIXTURES / "principals" / "analyst.yaml")
    code, _, err = _run("risk", "--principal", principal, "--access", "policy", *MESH)
    assert code == 2
    assert "meshgov/access" in err


def test_catalog_and_policies_may_be_given_to_the_group() -> None:
    result = runner.invoke(app, ["graph", *MESH, "lineage", "marketing/segment_report"])
    assert result.exit_code == 0
    assert "1 marketing/customer_360" in result.stdout


def test_html_of_a_larger_mesh_lists_only_identifiers_and_pii(tmp_path: Path) -> None:
    source = (FIXTURES / "mesh" / "customer" / "customers.yaml").read_text()
    for i in range(14):  # more products than the picture draws in full
        (tmp_path / f"c{i}.yaml").write_text(source.replace("name: customers", f"name: c{i:02d}"))
    target = tmp_path / "out" / "mesh.html"
    target.parent.mkdir()
    catalog = ["--catalog", str(tmp_path), "--policies", str(FIXTURES / "policies")]
    code, _, _ = _run("export", "--format", "html", "-o", str(target), *catalog)
    assert code == 0
    page = target.read_text()
    assert 'class="hide-ident"' in page
    assert ">region<" not in page  # a plain column: counted in "… n more", not listed
    assert "customer_id  ⚷ customer" in page
    assert page.count("… 3 more") == 14
