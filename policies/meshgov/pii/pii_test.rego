package meshgov.pii_test

import rego.v1

import data.meshgov.pii

# Tests call pii.report(gate, registry) rather than `pii.violations with input as`: regopy 1.5
# fails ("rego-localref has no field rego-refhead") on `with input as` over rules that call functions.

_email := {
	"name": "email", "type": "string", "classification": "confidential",
	"pii": true, "piiCategory": "email", "mask": "hash",
}

_id := {"name": "customer_id", "type": "string", "classification": "internal", "pii": false}

_port(columns) := {"name": "main", "retention": "3y", "columns": columns}

_gate(ports) := {
	"product": {"id": "customer/customers", "spec": {"outputPorts": ports}},
	"previous": null, "scan": [], "identity_facts": [],
}

_columns_gate(columns) := _gate([_port(columns)])

_with(col, key, value) := object.union(col, {key: value})

_without(col, key) := object.remove(col, [key])

_found(gate) := pii.report(gate, data.registry)

_rules(gate) := {v.rule | some v in _found(gate)}

_only(gate, rule) := [v | some v in _found(gate); v.rule == rule]

test_well_declared_pii_column_is_clean if {
	_found(_columns_gate([_id, _email])) == set()
}

test_pii_column_without_classification_is_violation if {
	[v] := _only(_columns_gate([_id, _without(_email, "classification")]), "pii/unclassified")
	v.severity == "error"
	v.location == {"product": "customer/customers", "port": "main", "column": "email"}
	contains(v.message, "'email'")
}

test_pii_column_with_null_classification_is_violation if {
	"pii/unclassified" in _rules(_columns_gate([_id, _with(_email, "classification", null)]))
}

test_public_pii_column_is_violation if {
	[v] := _only(_columns_gate([_id, _with(_email, "classification", "public")]), "pii/public-pii")
	contains(v.message, "'public'")
}

test_internal_pii_column_is_too_low if {
	[v] := _only(
		_columns_gate([_id, _with(_email, "classification", "internal")]),
		"pii/classification-too-low",
	)
	v.message == "PII column 'email' (category 'email') is classified 'internal'; it must be 'confidential' or higher"
}

test_national_id_needs_restricted if {
	ssn := object.union(_email, {"name": "ssn", "piiCategory": "national_id"})
	[v] := _only(_columns_gate([_id, ssn]), "pii/classification-too-low")
	contains(v.message, "'restricted'")
}

test_restricted_national_id_is_clean if {
	ssn := object.union(_email, {"name": "ssn", "piiCategory": "national_id", "classification": "restricted"})
	_found(_columns_gate([_id, ssn])) == set()
}

test_unknown_classification_fails_closed if {
	"pii/classification-too-low" in _rules(_columns_gate([_id, _with(_email, "classification", "secret")]))
}

test_pii_column_without_category_is_violation if {
	rules := _rules(_columns_gate([_id, _without(_email, "piiCategory")]))
	"pii/missing-category" in rules
}

test_unknown_category_names_the_value if {
	[v] := _only(_columns_gate([_id, _with(_email, "piiCategory", "shoe_size")]), "pii/unknown-category")
	contains(v.message, "'shoe_size'")
	contains(v.fix, "email")
}

test_pii_column_without_mask_is_violation if {
	[v] := _only(_columns_gate([_id, _without(_email, "mask")]), "pii/missing-mask")
	contains(v.fix, "mask: hash")
}

test_mask_that_does_not_hide_category_is_violation if {
	ssn := object.union(_email, {
		"name": "ssn", "piiCategory": "national_id",
		"classification": "restricted", "mask": "partial",
	})
	[v] := _only(_columns_gate([_id, ssn]), "pii/mask-not-allowed")
	startswith(v.message, "mask 'partial' does not hide 'national_id' values")
}

test_year_mask_on_string_is_not_applicable if {
	dob := object.union(_email, {"name": "dob", "piiCategory": "birth_date", "mask": "year"})
	[v] := _only(_columns_gate([_id, dob]), "pii/mask-not-applicable")
	v.message == "mask 'year' cannot apply to column 'dob' of type 'string'"
}

test_hash_mask_on_a_number_or_date_is_not_applicable if {
	for_id := object.union(_email, {"name": "customer_no", "type": "integer", "mask": "hash"})
	[v] := _only(_columns_gate([_id, for_id]), "pii/mask-not-applicable")
	v.message == "mask 'hash' cannot apply to column 'customer_no' of type 'integer'"
	born := object.union(_email, {"name": "born", "type": "date", "mask": "hash"})
	[w] := _only(_columns_gate([_id, born]), "pii/mask-not-applicable")
	w.message == "mask 'hash' cannot apply to column 'born' of type 'date'"
}

test_hash_mask_on_text_is_applicable if {
	count(_only(_columns_gate([_id, _email]), "pii/mask-not-applicable")) == 0
}

test_expr_mask_without_expression_is_violation if {
	[v] := _only(_columns_gate([_id, _with(_email, "mask", "expr")]), "pii/missing-mask-expr")
	v.message == "column 'email' has `mask: expr` but no maskExpr"
}

test_expr_mask_with_expression_is_clean if {
	email := object.union(_email, {"mask": "expr", "maskExpr": "concat('***', right({col}, 4))"})
	_found(_columns_gate([_id, email])) == set()
}

test_year_mask_on_date_is_clean if {
	dob := object.union(_email, {"name": "dob", "type": "date", "piiCategory": "birth_date", "mask": "year"})
	_found(_columns_gate([_id, dob])) == set()
}

test_port_with_pii_without_retention_is_violation if {
	port := object.remove(_port([_id, _email]), ["retention"])
	[v] := _only(_gate([port]), "pii/missing-retention")
	v.location == {"product": "customer/customers", "port": "main", "column": null}
	v.message == "port 'main' holds PII (email) but declares no retention"
}

test_port_without_pii_needs_no_retention if {
	port := object.remove(_port([_id]), ["retention"])
	_found(_gate([port])) == set()
}

test_retention_must_be_a_duration if {
	[v] := _only(_gate([_with(_port([_id, _email]), "retention", "forever")]), "pii/invalid-retention")
	contains(v.message, "'forever'")
}

test_iso_retention_is_accepted if {
	_found(_gate([_with(_port([_id, _email]), "retention", "P3Y")])) == set()
}

test_pii_in_public_port_is_violation if {
	public_id := _with(_id, "classification", "public")
	[v] := _only(_columns_gate([public_id, _email]), "pii/public-port")
	contains(v.message, "(email)")
}

test_pii_like_name_without_pii_flag_is_warning if {
	phone := {"name": "mobile_phone", "type": "string", "classification": "confidential"}
	[v] := _only(_columns_gate([_id, phone]), "pii/undeclared-name")
	v.severity == "warning"
	v.message == "column 'mobile_phone' is named like PII (phone) but is not declared `pii: true`"
}

test_pii_like_names_are_recognised if {
	names := ["email", "Email_Address", "ssn", "dob", "date_of_birth", "iban", "card_number", "ip_address", "first_name"]
	every name in names {
		col := {"name": name, "type": "string", "classification": "internal"}
		"pii/undeclared-name" in _rules(_columns_gate([_id, col]))
	}
}

test_ordinary_names_are_not_pii_like if {
	names := ["customer_id", "region", "signup_date", "order_total", "pipeline", "capital", "description"]
	every name in names {
		col := {"name": name, "type": "string", "classification": "internal"}
		_found(_columns_gate([_id, col])) == set()
	}
}

_scan(column, category) := {"port": "main", "column": column, "category": category, "share": 0.375, "sampled": 200}

test_undeclared_pii_in_snapshot_is_violation_with_share if {
	notes := {"name": "notes", "type": "string", "classification": "internal"}
	gate := object.union(_columns_gate([_id, notes]), {"scan": [_scan("notes", "email")]})
	[v] := _only(gate, "pii/undeclared-in-snapshot")
	v.severity == "error"
	v.location.column == "notes"
	v.message == "37.5% of 200 sampled values of column 'notes' look like email, but the column is not declared PII"
}

test_declared_pii_in_snapshot_is_clean if {
	gate := object.union(_columns_gate([_id, _email]), {"scan": [_scan("email", "email")]})
	_found(gate) == set()
}

test_snapshot_category_mismatch_is_warning if {
	gate := object.union(_columns_gate([_id, _email]), {"scan": [_scan("email", "phone")]})
	[v] := _only(gate, "pii/category-mismatch")
	v.severity == "warning"
}

test_missing_scan_is_clean if {
	gate := object.remove(_columns_gate([_id, _email]), ["scan"])
	_found(gate) == set()
}

test_null_scan_is_clean if {
	gate := object.union(_columns_gate([_id, _email]), {"scan": null})
	_found(gate) == set()
}
