# METADATA
# title: Personal data (PII)
# description: |
#   PII columns are classified high enough, carry a known category and a mask that fits both the
#   category and the column type; ports with PII declare a retention; PII never sits in a public
#   port; names that look like PII and snapshot values that look like PII must be declared.
# related_resources:
#   - ref: docs/policies.md#pii
# custom:
#   owner: guild
package meshgov.pii

import rego.v1

import data.meshgov.lib.result

# METADATA
# title: PII violations of the product under release
# description: Every PII violation of input.product (and input.scan), against data.registry.
# custom:
#   owner: guild
violations := report(input, data.registry)

# METADATA
# title: PII violations of a gate input against a registry
# description: |
#   The gate input ({product, previous, scan, identity_facts}) and the registry are arguments
#   (rather than input/data) so that tests call it directly: `with input as` is unreliable in
#   regopy 1.5 once the rule body calls a function.
report(gate, registry) := found if {
	classified := _unclassified(gate) | _public_pii(gate) | _classification_too_low(gate, registry)
	categorised := _missing_category(gate) | _unknown_category(gate, registry)
	masked := _missing_mask(gate, registry) | _mask_not_allowed(gate, registry) | _mask_not_applicable(gate, registry)
	templated := _missing_mask_expr(gate)
	kept := _missing_retention(gate) | _invalid_retention(gate) | _public_port(gate)
	detected := _undeclared_name(gate, registry) | _scan_findings(gate)
	found := classified | categorised | masked | templated | kept | detected
}

_product_id(gate) := object.get(gate.product, "id", null)

_is_pii(col) if object.get(col, "pii", false) == true

_blank(obj, key) if object.get(obj, key, null) == null

_blank(obj, key) if object.get(obj, key, null) == ""

# Paths, not object.get with defaults: a builtin that returns an object or array copies it, and
# Manifest.policy_document() always has these keys.
_ports(gate) := gate.product.spec.outputPorts

_rank(tier, registry) := object.get(registry.classifications.tiers, tier, {"rank": -1}).rank

# The lowest tier for a column: its category's minimum, else the guild-wide PII minimum.
_required_tier(col, registry) := tier if {
	tier := registry.pii_categories[col.piiCategory].minimum
} else := registry.classifications.pii_minimum

_category_label(col) := category if {
	category := object.get(col, "piiCategory", null)
	category != null
} else := "none"

# METADATA
# title: PII column without classification
# description: |
#   A column declared pii: true carries no classification tier.
# custom:
#   rules:
#     pii/unclassified: error
_unclassified(gate) := {v |
	some port in _ports(gate)
	some col in port.columns
	_is_pii(col)
	_blank(col, "classification")
	v := result.violation(
		"pii/unclassified",
		"error",
		result.text(["PII column '", col.name, "' has no classification"]),
		result.location(_product_id(gate), port.name, col.name),
		"Add `classification: confidential` (or restricted) to the column.",
	)
}

# METADATA
# title: PII column classified public
# description: |
#   Public data may leave the company; personal data may not.
# custom:
#   rules:
#     pii/public-pii: error
_public_pii(gate) := {v |
	some port in _ports(gate)
	some col in port.columns
	_is_pii(col)
	col.classification == "public"
	v := result.violation(
		"pii/public-pii",
		"error",
		result.text(["PII column '", col.name, "' is classified 'public'"]),
		result.location(_product_id(gate), port.name, col.name),
		"Classify the column confidential or restricted, or drop it from the port.",
	)
}

# METADATA
# title: PII classified below its category's minimum
# description: |
#   The tier of a PII column is below the minimum of its category (or the guild-wide PII
#   minimum); an unknown tier counts as too low.
# custom:
#   rules:
#     pii/classification-too-low: error
_classification_too_low(gate, registry) := {v |
	some port in _ports(gate)
	some col in port.columns
	_is_pii(col)
	not _blank(col, "classification")
	col.classification != "public"
	required := _required_tier(col, registry)
	_rank(col.classification, registry) < _rank(required, registry)
	v := result.violation(
		"pii/classification-too-low",
		"error",
		result.text([
			"PII column '", col.name, "' (category '", _category_label(col), "') is classified '",
			col.classification, "'; it must be '", required, "' or higher",
		]),
		result.location(_product_id(gate), port.name, col.name),
		result.text(["Set `classification: ", required, "` (or higher) on the column."]),
	)
}

# METADATA
# title: PII column without category
# description: |
#   A PII column names no piiCategory.
# custom:
#   rules:
#     pii/missing-category: error
_missing_category(gate) := {v |
	some port in _ports(gate)
	some col in port.columns
	_is_pii(col)
	_blank(col, "piiCategory")
	v := result.violation(
		"pii/missing-category",
		"error",
		result.text(["PII column '", col.name, "' has no piiCategory"]),
		result.location(_product_id(gate), port.name, col.name),
		"Add `piiCategory:` with one of the guild's categories (email, phone, name, ...).",
	)
}

# METADATA
# title: Unknown PII category
# description: |
#   A piiCategory that data.registry.pii_categories does not define.
# custom:
#   rules:
#     pii/unknown-category: error
_unknown_category(gate, registry) := {v |
	some port in _ports(gate)
	some col in port.columns
	not _blank(col, "piiCategory")
	not registry.pii_categories[col.piiCategory]
	known := concat(", ", sort([c | some c; registry.pii_categories[c]]))
	v := result.violation(
		"pii/unknown-category",
		"error",
		result.text(["column '", col.name, "' has unknown piiCategory '", col.piiCategory, "'"]),
		result.location(_product_id(gate), port.name, col.name),
		result.text(["Use one of: ", known, " (or ask the guild to add a category)."]),
	)
}

# METADATA
# title: PII column without mask
# description: |
#   A PII column declares no mask for readers without clearance.
# custom:
#   rules:
#     pii/missing-mask: error
_missing_mask(gate, registry) := {v |
	some port in _ports(gate)
	some col in port.columns
	_is_pii(col)
	_blank(col, "mask")
	v := result.violation(
		"pii/missing-mask",
		"error",
		result.text(["PII column '", col.name, "' declares no mask"]),
		result.location(_product_id(gate), port.name, col.name),
		result.text(["Add `mask: ", _default_mask(col, registry), "` (the default for its category)."]),
	)
}

_default_mask(col, registry) := mask if {
	mask := registry.pii_categories[col.piiCategory].default_mask
} else := "redact"

# METADATA
# title: Mask that does not hide the category
# description: |
#   The mask is not among the allowed_masks of the column's PII category.
# custom:
#   rules:
#     pii/mask-not-allowed: error
_mask_not_allowed(gate, registry) := {v |
	some port in _ports(gate)
	some col in port.columns
	_is_pii(col)
	not _blank(col, "mask")
	allowed := registry.pii_categories[col.piiCategory].allowed_masks
	not col.mask in allowed
	v := result.violation(
		"pii/mask-not-allowed",
		"error",
		result.text([
			"mask '", col.mask, "' does not hide '", col.piiCategory, "' values (column '", col.name,
			"'); allowed: ", concat(", ", allowed),
		]),
		result.location(_product_id(gate), port.name, col.name),
		result.text(["Use `mask: ", _default_mask(col, registry), "` or another allowed mask."]),
	)
}

# METADATA
# title: Mask that does not fit the column type
# description: |
#   The mask cannot be computed on the column's logical type (types in data.registry.masks).
# custom:
#   rules:
#     pii/mask-not-applicable: error
_mask_not_applicable(gate, registry) := {v |
	some port in _ports(gate)
	some col in port.columns
	not _blank(col, "mask")
	not _mask_fits(col, registry)
	v := result.violation(
		"pii/mask-not-applicable",
		"error",
		result.text(["mask '", col.mask, "' cannot apply to column '", col.name, "' of type '", col.type, "'"]),
		result.location(_product_id(gate), port.name, col.name),
		"Choose a mask that fits the column type (see policies/data/masks.yaml).",
	)
}

# METADATA
# title: Expression mask without its expression
# description: |
#   `mask: expr` needs `maskExpr:` (a SQL template over the column); without it every read of the
#   column is denied at query time.
# custom:
#   rules:
#     pii/missing-mask-expr: error
_missing_mask_expr(gate) := {v |
	some port in _ports(gate)
	some col in port.columns
	object.get(col, "mask", null) == "expr"
	_blank(col, "maskExpr")
	v := result.violation(
		"pii/missing-mask-expr",
		"error",
		result.text(["column '", col.name, "' has `mask: expr` but no maskExpr"]),
		result.location(_product_id(gate), port.name, col.name),
		"Add `maskExpr:` with a SQL template over the column, e.g. \"concat('***', right({col}, 2))\".",
	)
}

_mask_fits(col, registry) if col.type in registry.masks[col.mask].types

_pii_names(port) := sort([col.name | some col in port.columns; _is_pii(col)])

# METADATA
# title: Port with PII without retention
# description: |
#   A port that holds PII columns declares no retention.
# custom:
#   rules:
#     pii/missing-retention: error
_missing_retention(gate) := {v |
	some port in _ports(gate)
	names := _pii_names(port)
	count(names) > 0
	_blank(port, "retention")
	v := result.violation(
		"pii/missing-retention",
		"error",
		result.text(["port '", port.name, "' holds PII (", concat(", ", names), ") but declares no retention"]),
		result.location(_product_id(gate), port.name, null),
		"Add `retention:` to the port, e.g. `retention: 3y` (d, w, m, y or ISO 8601 P3Y).",
	)
}

_valid_retention(text) if regex.match(`^[1-9][0-9]*[dwmy]$`, text)

_valid_retention(text) if regex.match(`^P([0-9]+Y)?([0-9]+M)?([0-9]+W)?([0-9]+D)?$`, text)

# METADATA
# title: Retention that is not a duration
# description: |
#   The retention of a port with PII is not a duration (90d, 12w, 18m, 3y, P3Y).
# custom:
#   rules:
#     pii/invalid-retention: error
_invalid_retention(gate) := {v |
	some port in _ports(gate)
	count(_pii_names(port)) > 0
	not _blank(port, "retention")
	not _valid_retention(port.retention)
	v := result.violation(
		"pii/invalid-retention",
		"error",
		result.text(["port '", port.name, "' has retention '", port.retention, "', which is not a duration"]),
		result.location(_product_id(gate), port.name, null),
		"Write the retention as a duration: 90d, 12w, 18m, 3y or ISO 8601 (P3Y).",
	)
}

# METADATA
# title: PII in a public port
# description: |
#   A port is public when every column that is not PII is classified public; it must carry no
#   PII.
# custom:
#   rules:
#     pii/public-port: error
_public_port(gate) := {v |
	some port in _ports(gate)
	names := _pii_names(port)
	count(names) > 0
	others := [col | some col in port.columns; not _is_pii(col)]
	count(others) > 0
	every col in others {
		object.get(col, "classification", null) == "public"
	}
	v := result.violation(
		"pii/public-port",
		"error",
		result.text([
			"port '", port.name, "' is public (every other column is classified public) but carries PII (",
			concat(", ", names), ")",
		]),
		result.location(_product_id(gate), port.name, null),
		"Publish the PII columns in a separate, non-public port, or drop them.",
	)
}

_hinted_categories(col, registry) := sort([category |
	some category
	spec := registry.pii_categories[category]
	some hint in object.get(spec, "name_hints", [])
	regex.match(hint, lower(col.name))
])

# Every name hint in one pattern: most columns match none, and one regex is cheaper than a dozen.
_any_hint(registry) := concat("|", [concat("", ["(", hint, ")"]) |
	some category
	some hint in object.get(registry.pii_categories[category], "name_hints", [])
])

# METADATA
# title: "Column named like PII without `pii: true`"
# description: |
#   The column name matches a name hint of a PII category; a warning, since names are only a
#   hint.
# custom:
#   rules:
#     pii/undeclared-name: warning
_undeclared_name(gate, registry) := {v |
	any_hint := _any_hint(registry)
	some port in _ports(gate)
	some col in port.columns
	not _is_pii(col)
	regex.match(any_hint, lower(col.name))
	categories := _hinted_categories(col, registry)
	count(categories) > 0
	v := result.violation(
		"pii/undeclared-name",
		"warning",
		result.text([
			"column '", col.name, "' is named like PII (", concat(", ", categories),
			") but is not declared `pii: true`",
		]),
		result.location(_product_id(gate), port.name, col.name),
		"Declare `pii: true` with its piiCategory, classification and mask; or waive if it holds no personal data.",
	)
}

_scanned_column(gate, port_name, column_name) := col if {
	some port in _ports(gate)
	port.name == port_name
	some col in port.columns
	lower(col.name) == lower(column_name)
}

_declared_pii(gate, finding) if _is_pii(_scanned_column(gate, finding.port, finding.column))

_scan_results(gate) := scan if {
	scan := gate.scan
	is_array(scan)
} else := []

# One decimal, in integer arithmetic: regorus's sprintf("%.1f") drops the decimals of a whole
# number ("100%" where regopy writes "100.0%"), see docs/policies.md.
_share(finding) := concat("", [format_int(tenths / 10, 10), ".", format_int(tenths % 10, 10), "%"]) if {
	tenths := round(finding.share * 1000)
}

_scan_findings(gate) := _scan_undeclared(gate) | _scan_mismatch(gate)

# METADATA
# title: Snapshot values that look like PII in an undeclared column
# description: |
#   The snapshot scan (input.scan) found values of a PII category in a column not declared PII;
#   the message gives the share, never values.
# custom:
#   rules:
#     pii/undeclared-in-snapshot: error
_scan_undeclared(gate) := {v |
	some finding in _scan_results(gate)
	not _declared_pii(gate, finding)
	v := result.violation(
		"pii/undeclared-in-snapshot",
		"error",
		result.text([
			_share(finding), " of ", finding.sampled, " sampled values of column '", finding.column,
			"' look like ", finding.category, ", but the column is not declared PII",
		]),
		result.location(_product_id(gate), finding.port, finding.column),
		result.text([
			"Declare `pii: true, piiCategory: ", finding.category,
			"` with a classification and mask, or remove the values.",
		]),
	)
}

# METADATA
# title: Snapshot values of another PII category
# description: |
#   The scan found values of a category other than the column's piiCategory.
# custom:
#   rules:
#     pii/category-mismatch: warning
_scan_mismatch(gate) := {v |
	some finding in _scan_results(gate)
	col := _scanned_column(gate, finding.port, finding.column)
	_is_pii(col)
	declared := object.get(col, "piiCategory", null)
	declared != finding.category
	v := result.violation(
		"pii/category-mismatch",
		"warning",
		result.text([
			_share(finding), " of ", finding.sampled, " sampled values of column '", finding.column,
			"' look like ", finding.category, ", but its piiCategory is '", declared, "'",
		]),
		result.location(_product_id(gate), finding.port, finding.column),
		"Check the column's piiCategory and mask against what it really holds.",
	)
}
