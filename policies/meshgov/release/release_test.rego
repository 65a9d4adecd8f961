package meshgov.release_test

import rego.v1

import data.meshgov.release

_email := {
	"name": "email", "type": "string", "classification": "confidential",
	"pii": true, "piiCategory": "email", "mask": "hash",
}

_customer_id := {
	"name": "customer_id", "type": "string", "classification": "internal",
	"required": true, "unique": true, "primaryKey": true, "entity": "customer",
}

_region := {"name": "region", "type": "string", "classification": "internal", "enum": ["EU", "US"]}

_columns := [_customer_id, _email, _region]

_grant := {"to": {"groups": ["analysts"]}, "purposes": ["analytics"]}

_doc(version, columns) := {
	"id": "customer/customers",
	"semver_valid": true,
	"metadata": {
		"domain": "customer", "name": "customers", "version": version,
		"owner": "customer-data@acme.example", "description": "One row per customer.",
		"status": "active",
	},
	"spec": {
		"outputPorts": [{"name": "customers", "retention": "3y", "columns": columns}],
		"access": {"grants": [_grant]},
	},
}

_first_release := {"product": _doc("1.0.0", _columns), "previous": null, "scan": [], "identity_facts": []}

_change(version, columns) := {
	"product": _doc(version, columns),
	"previous": _doc("1.0.0", _columns),
	"scan": [], "identity_facts": [],
}

_found(gate) := release.report(gate, data.registry)

_rules(gate) := {v.rule | some v in _found(gate)}

_only(gate, rule) := [v | some v in _found(gate); v.rule == rule]

_replace(columns, name, changes) := [col |
	some original in columns
	col := _patched(original, name, changes)
]

_patched(col, name, changes) := object.union(col, changes) if col.name == name

_patched(col, name, _) := col if col.name != name

_drop(columns, name) := [col | some col in columns; col.name != name]

# object.union is shallow in regopy 1.5 (OPA's merges recursively): nested changes go level by level.
_with_meta(gate, key, value) := object.union(gate, {"product": _doc_with_meta(gate.product, key, value)})

_doc_with_meta(doc, key, value) := object.union(doc, {"metadata": object.union(doc.metadata, {key: value})})

_doc_with_spec(doc, key, value) := object.union(doc, {"spec": object.union(doc.spec, {key: value})})

_with_spec(gate, key, value) := object.union(gate, {"product": _doc_with_spec(gate.product, key, value)})

test_complete_first_release_is_clean if {
	_found(_first_release) == set()
}

test_missing_owner_is_violation if {
	[v] := _only(_with_meta(_first_release, "owner", null), "release/missing-owner")
	v.severity == "error"
	v.location == {"product": "customer/customers", "port": null, "column": null}
	v.message == "product 'customer/customers' has no metadata.owner"
}

test_missing_description_and_status_are_violations if {
	gate := _with_meta(_with_meta(_first_release, "description", ""), "status", null)
	rules := _rules(gate)
	"release/missing-description" in rules
	"release/missing-status" in rules
}

test_invalid_semver_is_violation if {
	product := object.union(_first_release.product, {"semver_valid": false})
	gate := _with_meta(object.union(_first_release, {"product": product}), "version", "1.0")
	[v] := _only(gate, "release/invalid-semver")
	contains(v.message, "'1.0'")
}

test_semver_checked_by_pattern_without_python_flag if {
	doc := object.remove(_doc("2.1", _columns), ["semver_valid"])
	"release/invalid-semver" in _rules({"product": doc, "previous": null})
	good := object.remove(_doc("2.1.0-rc.1+build.5", _columns), ["semver_valid"])
	_found({"product": good, "previous": null}) == set()
}

test_deprecated_product_needs_end_of_support if {
	gate := _with_meta(_first_release, "status", "deprecated")
	[v] := _only(gate, "release/missing-end-of-support")
	v.location.port == "customers"
	v.message == "product is deprecated but port 'customers' declares no endOfSupport"
}

test_unchanged_same_version_is_clean if {
	_found(_change("1.0.0", _columns)) == set()
}

test_changed_manifest_with_same_version_is_violation if {
	columns := _replace(_columns, "region", {"description": "Legal region."})
	[v] := _only(_change("1.0.0", columns), "release/version-not-bumped")
	v.message == "the manifest changed but its version is still 1.0.0"
}

test_lower_version_is_violation if {
	gate := _change("0.9.0", _columns)
	"release/version-decreased" in _rules(gate)
}

test_minor_release_adding_a_column_is_clean if {
	columns := array.concat(_columns, [{"name": "segment", "type": "string", "classification": "internal"}])
	_found(_change("1.1.0", columns)) == set()
}

test_removed_column_without_major_bump_is_error if {
	[v] := _only(_change("1.1.0", _drop(_columns, "region")), "release/column-removed")
	v.severity == "error"
	v.location == {"product": "customer/customers", "port": "customers", "column": "region"}
	v.message == concat("", [
		"column 'region' was removed from port 'customers' (or renamed) ",
		"without a major version bump (1.0.0 -> 1.1.0)",
	])
}

test_removed_column_with_major_bump_is_warning if {
	[v] := _only(_change("2.0.0", _drop(_columns, "region")), "release/column-removed")
	v.severity == "warning"
	endswith(v.message, "(allowed by the major version bump 1.0.0 -> 2.0.0)")
}

test_breaking_change_in_major_zero_is_warning if {
	gate := object.union(_change("0.3.0", _drop(_columns, "region")), {"previous": _doc("0.2.0", _columns)})
	[v] := _only(gate, "release/column-removed")
	v.severity == "warning"
	endswith(v.message, "(allowed while the major version is 0)")
}

test_removed_port_is_breaking if {
	gate := _with_spec(_change("1.1.0", _columns), "outputPorts", [
		{"name": "customers_v2", "retention": "3y", "columns": _columns},
	])
	[v] := _only(gate, "release/port-removed")
	v.severity == "error"
	v.location.port == "customers"
}

test_retyped_column_names_both_types if {
	columns := _replace(_columns, "region", {"type": "integer"})
	[v] := _only(_change("1.1.0", columns), "release/column-retyped")
	startswith(v.message, "column 'region' changed type from 'string' to 'integer'")
}

test_safe_widening_is_not_breaking if {
	previous := _doc("1.0.0", [_customer_id, {"name": "visits", "type": "integer"}])
	gate := {"product": _doc("1.1.0", [_customer_id, {"name": "visits", "type": "number"}]), "previous": previous}
	_found(gate) == set()
}

test_format_change_is_breaking if {
	columns := _replace(_columns, "customer_id", {"format": "^C[0-9]{8}$"})
	[v] := _only(_change("1.1.0", columns), "release/column-retyped")
	contains(v.message, "changed format from 'null' to '^C[0-9]{8}$'")
}

test_required_change_in_either_direction_is_breaking if {
	loosened := _replace(_columns, "customer_id", {"required": false})
	[v] := _only(_change("1.1.0", loosened), "release/required-changed")
	startswith(v.message, "column 'customer_id' changed required from true to false")
	tightened := _replace(_columns, "region", {"required": true})
	"release/required-changed" in _rules(_change("1.1.0", tightened))
}

test_unique_change_is_breaking if {
	columns := _replace(_columns, "customer_id", {"unique": false})
	"release/unique-changed" in _rules(_change("1.1.0", columns))
}

test_primary_key_change_on_entity_identifier_is_error if {
	columns := _replace(_columns, "customer_id", {"primaryKey": false})
	[v] := _only(_change("1.1.0", columns), "release/primary-key-changed")
	v.severity == "error"
}

test_primary_key_change_on_plain_column_is_warning if {
	columns := _replace(_columns, "region", {"primaryKey": true})
	[v] := _only(_change("1.1.0", columns), "release/primary-key-changed")
	v.severity == "warning"
}

test_enum_value_removed_is_breaking if {
	columns := _replace(_columns, "region", {"enum": ["EU"]})
	[v] := _only(_change("1.1.0", columns), "release/enum-narrowed")
	startswith(v.message, "column 'region' no longer allows US")
}

test_enum_value_added_is_not_breaking if {
	columns := _replace(_columns, "region", {"enum": ["EU", "US", "APAC"]})
	_found(_change("1.1.0", columns)) == set()
}

test_enum_added_is_tightened if {
	columns := _replace(_columns, "email", {"enum": ["a@b.c"]})
	"release/constraint-tightened" in _rules(_change("1.1.0", columns))
}

test_bound_tightened_is_breaking if {
	previous := _doc("1.0.0", [object.union(_region, {"maxLength": 10})])
	gate := {"product": _doc("1.1.0", [object.union(_region, {"maxLength": 2})]), "previous": previous}
	[v] := _only(gate, "release/constraint-tightened")
	startswith(v.message, "column 'region' changed maxLength from 10 to 2")
}

test_bound_added_is_tightened if {
	columns := _replace(_columns, "region", {"minLength": 2})
	"release/constraint-tightened" in _rules(_change("1.1.0", columns))
}

test_bound_loosened_is_warning if {
	previous := _doc("1.0.0", [object.union(_region, {"minimum": 5})])
	gate := {"product": _doc("1.1.0", [object.union(_region, {"minimum": 1})]), "previous": previous}
	[v] := _only(gate, "release/constraint-loosened")
	v.severity == "warning"
}

test_pattern_changed_is_tightened_and_removed_is_loosened if {
	previous := _doc("1.0.0", [object.union(_region, {"pattern": "^[A-Z]{2}$"})])
	changed := {"product": _doc("1.1.0", [object.union(_region, {"pattern": "^[A-Z]{3}$"})]), "previous": previous}
	"release/constraint-tightened" in _rules(changed)
	removed := {"product": _doc("1.1.0", [_region]), "previous": previous}
	_rules(removed) == {"release/constraint-loosened"}
}

test_classification_lowered_is_error_even_with_major_bump if {
	columns := _replace(_columns, "email", {"classification": "internal"})
	[v] := _only(_change("2.0.0", columns), "release/classification-lowered")
	v.severity == "error"
	v.message == "column 'email' was lowered from classification 'confidential' to 'internal'"
}

test_classification_removed_is_lowered if {
	columns := _replace(_columns, "region", {"classification": null})
	"release/classification-lowered" in _rules(_change("2.0.0", columns))
}

test_pii_removed_is_error_even_with_major_bump if {
	columns := _replace(_columns, "email", {"pii": false})
	[v] := _only(_change("2.0.0", columns), "release/pii-removed")
	v.severity == "error"
	v.location.column == "email"
}

test_classification_raised_and_pii_added_are_warnings if {
	columns := _replace(_columns, "region", {"classification": "confidential", "pii": true})
	found := _found(_change("1.1.0", columns))
	{v.rule | some v in found} == {"release/classification-raised", "release/pii-added"}
	every v in found {
		v.severity == "warning"
	}
}

test_entity_link_removed_is_error_even_with_major_bump if {
	columns := _replace(_columns, "customer_id", {"entity": null})
	[v] := _only(_change("2.0.0", columns), "release/entity-changed")
	v.severity == "error"
	v.message == "column 'customer_id' changed its entity link from 'customer' to none"
}

test_entity_link_added_is_not_breaking if {
	previous := _doc("1.0.0", [_region])
	gate := {"product": _doc("1.1.0", [object.union(_region, {"entity": "region"})]), "previous": previous}
	_rules(gate) == set()
}

test_removed_grant_is_warning if {
	gate := _with_spec(_change("1.1.0", _columns), "access", {"grants": []})
	[v] := _only(gate, "release/grant-removed")
	v.severity == "warning"
	v.message == "the grant to groups analysts (purposes analytics) was removed or narrowed"
}

test_retention_change_on_pii_port_is_warning if {
	gate := _with_spec(_change("1.1.0", _columns), "outputPorts", [
		{"name": "customers", "retention": "5y", "columns": _columns},
	])
	[v] := _only(gate, "release/retention-changed")
	v.message == "retention of port 'customers' (which holds PII) changed from '3y' to '5y'"
}

test_retention_change_without_pii_is_clean if {
	columns := [_customer_id, _region]
	previous := _doc("1.0.0", columns)
	product := _doc_with_spec(_doc("1.1.0", columns), "outputPorts", [
		{"name": "customers", "retention": "1y", "columns": columns},
	])
	_found({"product": product, "previous": previous}) == set()
}

test_registered_purposes_and_existing_ports_pass if {
	gate := _with_spec(_first_release, "access", {"grants": [object.union(_grant, {"ports": ["customers"]})]})
	count({r | some r in _rules(gate); startswith(r, "release/grant-")}) == 0
	not "release/row-filter-invalid" in _rules(gate)
}

test_grant_for_an_unregistered_purpose_is_error if {
	grant := {"to": {"groups": ["analysts"]}, "purposes": ["analytics", "gossip"]}
	gate := _with_spec(_first_release, "access", {"grants": [grant]})
	[v] := _only(gate, "release/grant-unknown-purpose")
	v.severity == "error"
	v.location.grant == 0
	startswith(v.message, concat("", [
		"the grant to groups analysts names purpose 'gossip', ",
		"which is not registered (known: analytics, ",
	]))
}

test_grant_for_a_port_the_product_lacks_is_error if {
	gate := _with_spec(_first_release, "access", {"grants": [object.union(_grant, {"ports": ["customers", "custmers"]})]})
	[v] := _only(gate, "release/grant-unknown-port")
	v.location == {"product": "customer/customers", "port": "custmers", "column": null, "grant": 0}
	v.message == "the grant to groups analysts names port 'custmers', which the product does not have (ports: customers)"
}

test_row_filter_facts_are_located_errors if {
	fact := {
		"grant": "groups analysts", "index": 1, "port": "customers", "column": "regoin",
		"problem": "column 'regoin' is not a column of port 'customers'",
	}
	gate := object.union(_first_release, {"row_filter_facts": [fact]})
	[v] := _only(gate, "release/row-filter-invalid")
	v.severity == "error"
	v.location == {"product": "customer/customers", "port": "customers", "column": "regoin", "grant": 1}
	v.message == "the row filter of the grant to groups analysts: column 'regoin' is not a column of port 'customers'"
}

test_same_version_with_another_snapshot_path_is_not_a_change if {
	moved := [object.union(port, {"data": "elsewhere/customers.parquet"}) |
		some port in _doc("1.0.0", _columns).spec.outputPorts
	]
	gate := _with_spec(_change("1.0.0", _columns), "outputPorts", moved)
	not "release/version-not-bumped" in _rules(gate)
	changed := _with_spec(_change("1.0.0", _columns), "outputPorts", [object.union(moved[0], {"retention": "5y"})])
	"release/version-not-bumped" in _rules(changed)
}

test_port_moved_to_another_table_is_breaking if {
	moved := [object.union(port, {"table": "customer.customers_v2"}) |
		some port in _doc("1.1.0", _columns).spec.outputPorts
	]
	gate := _with_spec(_change("1.1.0", _columns), "outputPorts", moved)
	[v] := _only(gate, "release/port-relocated")
	v.severity == "error"
	startswith(v.message, "output port 'customers' changed its table from 'null' to 'customer.customers_v2'")
	v.location == {"product": "customer/customers", "port": "customers", "column": null}
}

test_port_moved_with_a_major_bump_is_a_warning if {
	moved := [object.union(port, {"kind": "files"}) | some port in _doc("2.0.0", _columns).spec.outputPorts]
	gate := _with_spec(_change("2.0.0", _columns), "outputPorts", moved)
	[v] := _only(gate, "release/port-relocated")
	v.severity == "warning"
}

# --- notes of the ODCS reader ---------------------------------------------------------------------

_with_notes(gate, notes) := object.union(gate, {"product": object.union(gate.product, {"sourceNotes": notes})})

_status_note := {
	"rule": "unmapped-value", "message": "status: status 'someday' has no meshgov meaning",
	"fix": "Use one of: draft, active.", "field": "status", "line": 6, "port": null, "column": null,
}

test_unmapped_value_note_is_a_located_violation if {
	gate := _with_notes(_with_meta(_first_release, "status", null), [_status_note])
	[v] := _only(gate, "release/unmapped-value")
	v.severity == "error"
	v.location == {"product": "customer/customers", "port": null, "column": null, "line": 6}
	v.message == "status: status 'someday' has no meshgov meaning"
	v.fix == "Use one of: draft, active."
	# reported as unmapped, not also as missing
	not "release/missing-status" in _rules(gate)
}

test_missing_schema_note_names_its_port if {
	note := {
		"rule": "missing-schema", "message": "schema[0]: no properties", "fix": "List them.",
		"field": "schema[0].properties", "line": 12, "port": "orders", "column": null,
	}
	[v] := _only(_with_notes(_first_release, [note]), "release/missing-schema")
	v.location.port == "orders"
	v.location.line == 12
}

test_a_note_of_an_unknown_kind_still_fails if {
	note := object.union(_status_note, {"rule": "something-new", "field": "x"})
	[v] := _only(_with_notes(_first_release, [note]), "release/unmapped-value")
	v.severity == "error"
}

test_no_notes_no_findings if {
	_found(_with_notes(_first_release, [])) == set()
}

test_notes_are_not_a_change_to_bump_for if {
	gate := object.union(_with_notes(_first_release, [_status_note]), {"previous": _first_release.product})
	not "release/version-not-bumped" in _rules(gate)
}
