package meshgov.main_test

import rego.v1

import data.meshgov.main

_main_product := {
	"id": "customer/customers",
	"semver_valid": true,
	"metadata": {"version": "1.0.0", "owner": "o@acme.example", "description": "d", "status": "active"},
	"spec": {"outputPorts": [{"name": "main", "columns": [
		{
			"name": "email", "type": "string", "classification": "internal",
			"pii": true, "piiCategory": "email", "mask": "hash",
		},
		{"name": "account", "type": "string", "classification": "internal", "entity": "account"},
	]}]},
}

_main_gate(product, previous) := {"product": product, "previous": previous, "scan": [], "identity_facts": []}

_main_rules(gate) := {v.rule | some v in main.report(gate, data.registry)}

test_violations_collect_every_concern if {
	previous := object.union(_main_product, {"metadata": object.union(_main_product.metadata, {"version": "1.1.0"})})
	rules := _main_rules(_main_gate(_main_product, previous))
	"pii/classification-too-low" in rules
	"pii/missing-retention" in rules
	"identity/unknown-entity" in rules
	"release/version-decreased" in rules
}

test_every_violation_has_the_gate_shape if {
	found := main.report(_main_gate(_main_product, null), data.registry)
	count(found) > 0
	every v in found {
		object.keys(v) == {"rule", "severity", "message", "location", "fix"}
		v.severity in {"error", "warning"}
		object.keys(v.location) == {"product", "port", "column"}
		v.location.product == "customer/customers"
		is_string(v.message)
		is_string(v.fix)
	}
}

test_clean_product_has_no_violations if {
	columns := [{"name": "region", "type": "string", "classification": "internal"}]
	product := object.union(_main_product, {"spec": {"outputPorts": [{"name": "main", "columns": columns}]}})
	main.report(_main_gate(product, product), data.registry) == set()
}
