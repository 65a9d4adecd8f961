# METADATA
# title: Release hygiene and breaking changes
# description: |
#   A product names its owner, description and status and carries a SemVer version that moves
#   forward. Against the previous version (input.previous), breaking changes (rules B1-B14 of the
#   manifest standards, columns matched by name within a port) need a major version bump; privacy
#   downgrades and entity-link changes are errors even with one.
# related_resources:
#   - ref: docs/policies.md#release
# custom:
#   owner: guild
package meshgov.release

import rego.v1

import data.meshgov.lib.result

# METADATA
# title: Release violations of the product under release
# description: Every release violation of input.product against input.previous.
violations := report(input, data.registry)

# METADATA
# title: Release violations of a gate input
# description: |
#   Metadata, version and grant checks always; the breaking-change checks when gate.previous is
#   an object.
report(gate, registry) := (_metadata_findings(gate) | _change_findings(gate)) | _grant_validity(gate, registry)

_metadata_findings(gate) := (
	((_missing_metadata(gate) | _invalid_semver(gate)) | _missing_end_of_support(gate))
		| _source_findings(gate)
)

_change_findings(gate) := set() if not _has_previous(gate)

_change_findings(gate) := findings if {
	_has_previous(gate)
	ctx := _context(gate)
	structure := (_port_findings(gate, ctx) | _port_relocations(gate, ctx)) | _column_findings(gate, ctx)
	findings := _version_findings(gate) | structure | _grant_findings(gate) | _retention_findings(gate)
}

_has_previous(gate) if is_object(gate.previous)

_release_id(gate) := object.get(gate.product, "id", null)

# Paths, not object.get with defaults: a builtin that returns an object or array copies it, and
# Manifest.policy_document() always has these keys.
_release_meta(doc) := doc.metadata

_release_ports(doc) := doc.spec.outputPorts

_release_value(obj, key) := object.get(obj, key, null)

_release_blank(obj, key) if _release_value(obj, key) == null

_release_blank(obj, key) if _release_value(obj, key) == ""

_required_fields := {
	"owner": "Add `metadata.owner:` (the accountable team's address).",
	"description": "Add `metadata.description:` saying what one row means and where it comes from.",
	"status": "Add `metadata.status:` (draft, active, deprecated or retired).",
}

# METADATA
# title: Missing owner, description or status
# description: |
#   metadata.owner, metadata.description and metadata.status are required.
# custom:
#   rules:
#     release/missing-owner: error
#     release/missing-description: error
#     release/missing-status: error
_missing_metadata(gate) := {v |
	some field
	fix := _required_fields[field]
	_release_blank(_release_meta(gate.product), field)
	not _noted(gate, field)
	v := result.violation(
		concat("", ["release/missing-", field]),
		"error",
		result.text(["product '", _release_id(gate), "' has no metadata.", field]),
		result.location(_release_id(gate), null, null),
		fix,
	)
}

# The notes of the ODCS reader (empty for meshgov/v1 manifests and for other callers).
_source_notes(doc) := object.get(doc, "sourceNotes", [])

# A field the reader could not map is reported as unmapped, not also as missing.
_noted(gate, field) if {
	some note in _source_notes(gate.product)
	note.field == field
}

_source_rules := {
	"unmapped-value": "release/unmapped-value",
	"missing-schema": "release/missing-schema",
}

# A note of a kind these policies do not know still fails the release (fail closed).
_source_rule(note) := _source_rules[note.rule]

_source_rule(note) := "release/unmapped-value" if not _source_rules[note.rule]

# METADATA
# title: ODCS values meshgov cannot map, and contracts that describe no data
# description: |
#   The ODCS reader records what it cannot map onto the model (input.product.sourceNotes), with
#   its line and the documented default it used instead: a free-text status, classification,
#   type or mask with no meshgov meaning, several owners, repeated names (unmapped-value); a
#   contract with no schema objects, or a schema object with no properties (missing-schema).
# custom:
#   rules:
#     release/unmapped-value: error
#     release/missing-schema: error
_source_findings(gate) := {v |
	some note in _source_notes(gate.product)
	where := result.location(_release_id(gate), object.get(note, "port", null), object.get(note, "column", null))
	v := result.violation(
		_source_rule(note),
		"error",
		result.text([object.get(note, "message", "")]),
		object.union(where, {"line": object.get(note, "line", null)}),
		object.get(note, "fix", null),
	)
}

_semver_pattern := `^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`

# input.product.semver_valid is computed in Python; the pattern is the fallback for other callers.
_semver_valid(doc) if object.get(doc, "semver_valid", null) == true

_semver_valid(doc) if {
	object.get(doc, "semver_valid", null) == null
	regex.match(_semver_pattern, result.text([_release_value(_release_meta(doc), "version")]))
}

# METADATA
# title: Version that is not SemVer
# description: |
#   metadata.version must be MAJOR.MINOR.PATCH (with optional pre-release and build).
# custom:
#   rules:
#     release/invalid-semver: error
_invalid_semver(gate) := {v |
	not _semver_valid(gate.product)
	v := result.violation(
		"release/invalid-semver",
		"error",
		result.text([
			"version '", _release_value(_release_meta(gate.product), "version"),
			"' is not SemVer (MAJOR.MINOR.PATCH)",
		]),
		result.location(_release_id(gate), null, null),
		"Use a SemVer version such as 2.1.0 (https://semver.org).",
	)
}

# METADATA
# title: Deprecated or retired without endOfSupport
# description: |
#   B9: every port of a deprecated or retired product declares endOfSupport.
# custom:
#   rules:
#     release/missing-end-of-support: error
_missing_end_of_support(gate) := {v |
	status := _release_value(_release_meta(gate.product), "status")
	status in {"deprecated", "retired"}
	some port in _release_ports(gate.product)
	_release_blank(port, "endOfSupport")
	v := result.violation(
		"release/missing-end-of-support",
		"error",
		result.text(["product is ", status, " but port '", port.name, "' declares no endOfSupport"]),
		result.location(_release_id(gate), port.name, null),
		"Add `endOfSupport: <date>` to every port so consumers know until when they can rely on it.",
	)
}

# [major, minor, patch] of a SemVer string, ignoring pre-release and build metadata.
_version_core(version) := [to_number(part) | some part in split(split(split(version, "+")[0], "-")[0], ".")]

_version_of(doc) := _release_value(_release_meta(doc), "version")

_versions_comparable(gate) if {
	_semver_valid(gate.product)
	_semver_valid(gate.previous)
}

_version_greater(a, b) if a[0] > b[0]

_version_greater(a, b) if {
	a[0] == b[0]
	a[1] > b[1]
}

_version_greater(a, b) if {
	a[0] == b[0]
	a[1] == b[1]
	a[2] > b[2]
}

# Where a port's snapshot sits (`data:`) is not part of the contract: an ODCS contract and the
# meshgov manifest of the same version differ there and nowhere else.
_comparable_doc(doc) := object.union(
	object.remove(doc, ["source", "sourceFormat", "semver_valid", "sourceNotes"]),
	{"spec": object.union(doc.spec, {"outputPorts": [object.remove(port, ["data"]) |
		some port in doc.spec.outputPorts
	]})},
)

# METADATA
# title: Version that does not move forward
# description: |
#   Against the previous version: a lower version, or the same version for a changed manifest.
# custom:
#   rules:
#     release/version-decreased: error
#     release/version-not-bumped: error
_version_findings(gate) := {v |
	_versions_comparable(gate)
	current := _version_core(_version_of(gate.product))
	previous := _version_core(_version_of(gate.previous))
	_version_greater(previous, current)
	v := result.violation(
		"release/version-decreased",
		"error",
		result.text([
			"version ", _version_of(gate.product), " is lower than the previous version ",
			_version_of(gate.previous),
		]),
		result.location(_release_id(gate), null, null),
		"Release with a version higher than the previous one.",
	)
} | {v |
	_versions_comparable(gate)
	_version_of(gate.product) == _version_of(gate.previous)
	_comparable_doc(gate.product) != _comparable_doc(gate.previous)
	v := result.violation(
		"release/version-not-bumped",
		"error",
		result.text(["the manifest changed but its version is still ", _version_of(gate.product)]),
		result.location(_release_id(gate), null, null),
		"Bump the version: patch for fixes, minor for additions, major for breaking changes.",
	)
}

_major_of(doc) := _version_core(_version_of(doc))[0]

# Breaking changes are errors unless the major version went up, or the product is still 0.x.
_breaking_allowed(gate) := "major" if {
	_versions_comparable(gate)
	_major_of(gate.product) > _major_of(gate.previous)
} else := "zero" if {
	_semver_valid(gate.product)
	_major_of(gate.product) == 0
} else := "no"

_breaking_severity(allowed) := "error" if allowed == "no"

_breaking_severity(allowed) := "warning" if allowed != "no"

_bump_note(gate, allowed) := result.text([
	" (allowed by the major version bump ", _version_of(gate.previous), " -> ", _version_of(gate.product), ")",
]) if allowed == "major"

_bump_note(_, allowed) := " (allowed while the major version is 0)" if allowed == "zero"

_bump_note(gate, allowed) := result.text([
	" without a major version bump (", _version_of(gate.previous), " -> ", _version_of(gate.product), ")",
]) if allowed == "no"

_breaking(ctx, rule, message, location, fix) := result.violation(
	rule,
	ctx.severity,
	result.text([message, ctx.note]),
	location,
	fix,
)

# What every breaking-change check needs, computed once per gate input.
_context(gate) := ctx if {
	allowed := _breaking_allowed(gate)
	ctx := {
		"product": _release_id(gate),
		"severity": _breaking_severity(allowed),
		"note": _bump_note(gate, allowed),
		"pairs": _column_pairs(gate),
	}
}

_bump_fix := "Keep the old shape, or release it as a new major version (and tell the consumers)."

# METADATA
# title: Output port removed
# description: |
#   B9: a port of the previous version is gone.
# custom:
#   rules:
#     release/port-removed: breaking
_port_findings(gate, ctx) := {v |
	some old_port in _release_ports(gate.previous)
	not _has_port(gate.product, old_port.name)
	v := _breaking(
		ctx,
		"release/port-removed",
		result.text(["output port '", old_port.name, "' was removed"]),
		result.location(ctx.product, old_port.name, null),
		_bump_fix,
	)
}

# METADATA
# title: Output port moved to another table or kind
# description: |
#   B1/B2: the port keeps its name but its physical table (ODCS physicalName) or its kind
#   (physicalType) changed: every query that names the old table breaks.
# custom:
#   rules:
#     release/port-relocated: breaking
_port_relocations(gate, ctx) := {v |
	some old_port in _release_ports(gate.previous)
	some new_port in _release_ports(gate.product)
	old_port.name == new_port.name
	some key in ["table", "kind"]
	before := object.get(old_port, key, null)
	after := object.get(new_port, key, null)
	before != after
	v := _breaking(
		ctx,
		"release/port-relocated",
		result.text(["output port '", new_port.name, "' changed its ", key, " from '", before, "' to '", after, "'"]),
		result.location(ctx.product, new_port.name, null),
		_bump_fix,
	)
}

_has_port(doc, name) if {
	some port in _release_ports(doc)
	port.name == name
}

_has_column(port, name) if {
	some col in port.columns
	col.name == name
}

# Index quadruples [old port, old column, new port, new column] of the same column, changed, in
# the previous and the current version, matched by port and column name. Indexes, not column
# objects: collecting objects into a comprehension is slow in regopy, reading them is not.
# Every `some` is declared before the first loop of the body: regorus declares a `some` met after
# a loop again on each iteration (an error), see docs/policies.md.
_column_pairs(gate) := [[i, j, k, l] |
	some i, j, k, l
	old_ports := _release_ports(gate.previous)
	new_ports := _release_ports(gate.product)
	old_port := old_ports[i]
	new_port := new_ports[k]
	new_port.name == old_port.name
	old_col := old_port.columns[j]
	new_col := new_port.columns[l]
	new_col.name == old_col.name
	# Unchanged columns cannot break anything: most releases leave every check nothing to do.
	new_col != old_col
]

_column_findings(gate, ctx) := found if {
	shape := _removed_columns(gate, ctx) | _retyped_columns(gate, ctx) | _constraint_changes(gate, ctx)
	meaning := _key_changes(gate, ctx) | _enum_changes(gate, ctx) | _entity_changes(gate, ctx)
	found := shape | meaning | _privacy_changes(gate, ctx)
}

# METADATA
# title: Column removed or renamed
# description: |
#   B1: a column of the previous version is gone from its port (columns are matched by name).
# custom:
#   rules:
#     release/column-removed: breaking
_removed_columns(gate, ctx) := {v |
	some old_port in _release_ports(gate.previous)
	some new_port in _release_ports(gate.product)
	new_port.name == old_port.name
	some old_col in old_port.columns
	not _has_column(new_port, old_col.name)
	v := _breaking(
		ctx,
		"release/column-removed",
		result.text(["column '", old_col.name, "' was removed from port '", old_port.name, "' (or renamed)"]),
		result.location(ctx.product, old_port.name, old_col.name),
		_bump_fix,
	)
}

# Widenings that no reader can notice.
_safe_widenings := {["integer", "number"], ["integer", "decimal"]}

# METADATA
# title: Column type or format changed
# description: |
#   B2: type or format changed, except the safe widenings integer to number or decimal.
# custom:
#   rules:
#     release/column-retyped: breaking
_retyped_columns(gate, ctx) := {v |
	some pair in ctx.pairs
	port := gate.previous.spec.outputPorts[pair[0]].name
	old_col := gate.previous.spec.outputPorts[pair[0]].columns[pair[1]]
	new_col := gate.product.spec.outputPorts[pair[2]].columns[pair[3]]
	some field in ["type", "format"]
	old_value := _release_value(old_col, field)
	new_value := _release_value(new_col, field)
	old_value != new_value
	not [old_value, new_value] in _safe_widenings
	v := _breaking(
		ctx,
		"release/column-retyped",
		result.text(["column '", old_col.name, "' changed ", field, " from '", old_value, "' to '", new_value, "'"]),
		result.location(ctx.product, port, old_col.name),
		_bump_fix,
	)
}

# METADATA
# title: required or unique changed
# description: |
#   B3: in either direction.
# custom:
#   rules:
#     release/required-changed: breaking
#     release/unique-changed: breaking
_constraint_changes(gate, ctx) := {v |
	some pair in ctx.pairs
	port := gate.previous.spec.outputPorts[pair[0]].name
	old_col := gate.previous.spec.outputPorts[pair[0]].columns[pair[1]]
	new_col := gate.product.spec.outputPorts[pair[2]].columns[pair[3]]
	some field in ["required", "unique"]
	old_value := object.get(old_col, field, false) == true
	new_value := object.get(new_col, field, false) == true
	old_value != new_value
	v := _breaking(
		ctx,
		concat("", ["release/", field, "-changed"]),
		result.text(["column '", old_col.name, "' changed ", field, " from ", old_value, " to ", new_value]),
		result.location(ctx.product, port, old_col.name),
		_bump_fix,
	)
}

_is_key(col) if object.get(col, "primaryKey", false) == true

_has_entity(col) if _release_value(col, "entity") != null

# METADATA
# title: primaryKey changed
# description: |
#   B4: breaking on an entity identifier, a warning otherwise.
# custom:
#   rules:
#     release/primary-key-changed: breaking
_key_changes(gate, ctx) := {v |
	some pair in ctx.pairs
	port := gate.previous.spec.outputPorts[pair[0]].name
	old_col := gate.previous.spec.outputPorts[pair[0]].columns[pair[1]]
	new_col := gate.product.spec.outputPorts[pair[2]].columns[pair[3]]
	old_key := object.get(old_col, "primaryKey", false) == true
	new_key := object.get(new_col, "primaryKey", false) == true
	old_key != new_key
	message := result.text(["column '", old_col.name, "' changed primaryKey from ", old_key, " to ", new_key])
	location := result.location(ctx.product, port, old_col.name)
	v := _key_violation(ctx, old_col, new_col, message, location)
}

# B4: an entity identifier's key is breaking; other keys only warn.
_key_violation(ctx, old_col, new_col, message, location) := _breaking(
	ctx,
	"release/primary-key-changed",
	message,
	location,
	_bump_fix,
) if {
	_identifier_involved(old_col, new_col)
}

_key_violation(ctx, old_col, new_col, message, location) := result.violation(
	"release/primary-key-changed",
	"warning",
	message,
	location,
	"Tell the consumers that join on this key.",
) if {
	not _identifier_involved(old_col, new_col)
}

_identifier_involved(old_col, _) if _has_entity(old_col)

_identifier_involved(_, new_col) if _has_entity(new_col)

# METADATA
# title: Enum narrowed or constraints changed
# description: |
#   B5: enum values removed, an enum added, and the bound and pattern changes.
# custom:
#   rules:
#     release/enum-narrowed: breaking
#     release/constraint-tightened: breaking
#     release/constraint-loosened: warning
_enum_changes(gate, ctx) := {v |
	some pair in ctx.pairs
	port := gate.previous.spec.outputPorts[pair[0]].name
	old_col := gate.previous.spec.outputPorts[pair[0]].columns[pair[1]]
	new_col := gate.product.spec.outputPorts[pair[2]].columns[pair[3]]
	old_values := _release_value(old_col, "enum")
	new_values := _release_value(new_col, "enum")
	is_array(old_values)
	is_array(new_values)
	removed := {x | some x in old_values} - {x | some x in new_values}
	count(removed) > 0
	v := _breaking(
		ctx,
		"release/enum-narrowed",
		result.text(["column '", old_col.name, "' no longer allows ", concat(", ", sort(removed))]),
		result.location(ctx.product, port, old_col.name),
		_bump_fix,
	)
} | {v |
	some pair in ctx.pairs
	port := gate.previous.spec.outputPorts[pair[0]].name
	old_col := gate.previous.spec.outputPorts[pair[0]].columns[pair[1]]
	new_col := gate.product.spec.outputPorts[pair[2]].columns[pair[3]]
	_release_value(old_col, "enum") == null
	is_array(_release_value(new_col, "enum"))
	v := _breaking(
		ctx,
		"release/constraint-tightened",
		result.text(["column '", old_col.name, "' gained an enum (", concat(", ", new_col.enum), ")"]),
		result.location(ctx.product, port, old_col.name),
		_bump_fix,
	)
} | _bound_changes(gate, ctx)

# field -> the direction in which a larger value is tighter
_bounds := {"minLength": "up", "minimum": "up", "maxLength": "down", "maximum": "down"}

_tighter(direction, old_value, new_value) if {
	direction == "up"
	new_value > old_value
}

_tighter(direction, old_value, new_value) if {
	direction == "down"
	new_value < old_value
}

_bound_changes(gate, ctx) := {v |
	some pair in ctx.pairs
	port := gate.previous.spec.outputPorts[pair[0]].name
	old_col := gate.previous.spec.outputPorts[pair[0]].columns[pair[1]]
	new_col := gate.product.spec.outputPorts[pair[2]].columns[pair[3]]
	some field
	direction := _bounds[field]
	old_value := _release_value(old_col, field)
	new_value := _release_value(new_col, field)
	old_value != new_value
	v := _bound_violation(ctx, port, old_col.name, field, direction, old_value, new_value)
} | {v |
	some pair in ctx.pairs
	port := gate.previous.spec.outputPorts[pair[0]].name
	old_col := gate.previous.spec.outputPorts[pair[0]].columns[pair[1]]
	new_col := gate.product.spec.outputPorts[pair[2]].columns[pair[3]]
	old_value := _release_value(old_col, "pattern")
	new_value := _release_value(new_col, "pattern")
	old_value != new_value
	v := _pattern_violation(ctx, port, old_col.name, old_value, new_value)
}

_constraint_message(column, field, old_value, new_value) := result.text([
	"column '", column, "' changed ", field, " from ", _shown(old_value), " to ", _shown(new_value),
])

_shown(value) := "none" if value == null

_shown(value) := result.text(["'", value, "'"]) if is_string(value)

_shown(value) := result.text([value]) if {
	value != null
	not is_string(value)
}

# A bound that appears or moves inward is tightened; one that disappears or moves outward loosened.
_bound_violation(ctx, port, column, field, direction, old_value, new_value) := _breaking(
	ctx,
	"release/constraint-tightened",
	_constraint_message(column, field, old_value, new_value),
	result.location(ctx.product, port, column),
	_bump_fix,
) if {
	_bound_tightened(direction, old_value, new_value)
} else := result.violation(
	"release/constraint-loosened",
	"warning",
	_constraint_message(column, field, old_value, new_value),
	result.location(ctx.product, port, column),
	"Tell the consumers: values they never saw before may now arrive.",
)

_bound_tightened(_, old_value, new_value) if {
	old_value == null
	new_value != null
}

_bound_tightened(direction, old_value, new_value) if {
	old_value != null
	new_value != null
	_tighter(direction, old_value, new_value)
}

# A pattern that is removed is loosened; added or changed, its direction is unknown: tightened.
_pattern_violation(ctx, port, column, old_value, new_value) := result.violation(
	"release/constraint-loosened",
	"warning",
	_constraint_message(column, "pattern", old_value, new_value),
	result.location(ctx.product, port, column),
	"Tell the consumers: values they never saw before may now arrive.",
) if {
	new_value == null
} else := _breaking(
	ctx,
	"release/constraint-tightened",
	_constraint_message(column, "pattern", old_value, new_value),
	result.location(ctx.product, port, column),
	_bump_fix,
)

_tier_rank(tier) := rank if {
	rank := {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}[tier]
} else := -1

# METADATA
# title: Classification or pii changed
# description: |
#   B6: lowered classification or pii removed, errors even with a major bump; B7: raised or
#   added, warnings.
# custom:
#   rules:
#     release/classification-lowered: error
#     release/pii-removed: error
#     release/classification-raised: warning
#     release/pii-added: warning
_privacy_changes(gate, ctx) := {v |
	some pair in ctx.pairs
	port := gate.previous.spec.outputPorts[pair[0]].name
	old_col := gate.previous.spec.outputPorts[pair[0]].columns[pair[1]]
	new_col := gate.product.spec.outputPorts[pair[2]].columns[pair[3]]
	old_tier := _release_value(old_col, "classification")
	new_tier := _release_value(new_col, "classification")
	_tier_rank(new_tier) < _tier_rank(old_tier)
	v := result.violation(
		"release/classification-lowered",
		"error",
		result.text([
			"column '", old_col.name, "' was lowered from classification ", _shown(old_tier),
			" to ", _shown(new_tier),
		]),
		result.location(ctx.product, port, old_col.name),
		"Restore the classification; a privacy downgrade needs the guild's approval (a waiver), never just a version bump.",
	)
} | {v |
	some pair in ctx.pairs
	port := gate.previous.spec.outputPorts[pair[0]].name
	old_col := gate.previous.spec.outputPorts[pair[0]].columns[pair[1]]
	new_col := gate.product.spec.outputPorts[pair[2]].columns[pair[3]]
	object.get(old_col, "pii", false) == true
	object.get(new_col, "pii", false) != true
	v := result.violation(
		"release/pii-removed",
		"error",
		result.text(["column '", old_col.name, "' is no longer declared pii (it was pii: true)"]),
		result.location(ctx.product, port, old_col.name),
		"Keep `pii: true`; if the column truly no longer holds personal data, ask the guild for a waiver.",
	)
} | {v |
	some pair in ctx.pairs
	port := gate.previous.spec.outputPorts[pair[0]].name
	old_col := gate.previous.spec.outputPorts[pair[0]].columns[pair[1]]
	new_col := gate.product.spec.outputPorts[pair[2]].columns[pair[3]]
	old_tier := _release_value(old_col, "classification")
	new_tier := _release_value(new_col, "classification")
	old_tier != null
	_tier_rank(new_tier) > _tier_rank(old_tier)
	v := result.violation(
		"release/classification-raised",
		"warning",
		result.text([
			"column '", old_col.name, "' was raised from classification ", _shown(old_tier),
			" to ", _shown(new_tier),
		]),
		result.location(ctx.product, port, old_col.name),
		"Expect consumers to lose access or see masked values; tell them before the release.",
	)
} | {v |
	some pair in ctx.pairs
	port := gate.previous.spec.outputPorts[pair[0]].name
	old_col := gate.previous.spec.outputPorts[pair[0]].columns[pair[1]]
	new_col := gate.product.spec.outputPorts[pair[2]].columns[pair[3]]
	object.get(old_col, "pii", false) != true
	object.get(new_col, "pii", false) == true
	v := result.violation(
		"release/pii-added",
		"warning",
		result.text(["column '", old_col.name, "' is now declared pii"]),
		result.location(ctx.product, port, old_col.name),
		"Expect consumers without PII clearance to see masked values; tell them before the release.",
	)
}

# METADATA
# title: Entity link changed or removed
# description: |
#   B8: an error even with a major bump.
# custom:
#   rules:
#     release/entity-changed: error
_entity_changes(gate, ctx) := {v |
	some pair in ctx.pairs
	port := gate.previous.spec.outputPorts[pair[0]].name
	old_col := gate.previous.spec.outputPorts[pair[0]].columns[pair[1]]
	new_col := gate.product.spec.outputPorts[pair[2]].columns[pair[3]]
	old_entity := _release_value(old_col, "entity")
	old_entity != null
	new_entity := _release_value(new_col, "entity")
	old_entity != new_entity
	v := result.violation(
		"release/entity-changed",
		"error",
		result.text([
			"column '", old_col.name, "' changed its entity link from ", _shown(old_entity),
			" to ", _shown(new_entity),
		]),
		result.location(ctx.product, port, old_col.name),
		"Keep the entity link: other domains join on it. Publish a new column for a different entity.",
	)
}

_grants(doc) := grants if {
	grants := doc.spec.access.grants
} else := []

_grant_label(grant) := concat("; ", [part |
	some key in ["ids", "groups", "domains"]
	names := object.get(object.get(grant, "to", {}), key, [])
	count(names) > 0
	part := concat("", [key, " ", concat(", ", names)])
])

# METADATA
# title: Grant removed or narrowed
# description: |
#   B10: consumers of the grant lose access.
# custom:
#   rules:
#     release/grant-removed: warning
_grant_findings(gate) := {v |
	some old_grant in _grants(gate.previous)
	not old_grant in _grants(gate.product)
	v := result.violation(
		"release/grant-removed",
		"warning",
		result.text([
			"the grant to ", _grant_label(old_grant),
			" (purposes ", concat(", ", object.get(old_grant, "purposes", [])), ") was removed or narrowed",
		]),
		result.location(_release_id(gate), null, null),
		"Tell the consumers of that grant before the release; they lose access.",
	)
}

_port_has_pii(port) if {
	some col in port.columns
	object.get(col, "pii", false) == true
}

# METADATA
# title: Retention of a PII port changed
# description: |
#   B11: retention of personal data changed.
# custom:
#   rules:
#     release/retention-changed: warning
_retention_findings(gate) := {v |
	some old_port in _release_ports(gate.previous)
	some new_port in _release_ports(gate.product)
	new_port.name == old_port.name
	_release_value(old_port, "retention") != _release_value(new_port, "retention")
	some port in [old_port, new_port]
	_port_has_pii(port)
	v := result.violation(
		"release/retention-changed",
		"warning",
		result.text([
			"retention of port '", old_port.name, "' (which holds PII) changed from ",
			_shown(_release_value(old_port, "retention")), " to ", _shown(_release_value(new_port, "retention")),
		]),
		result.location(_release_id(gate), old_port.name, null),
		"Have the change reviewed by the guild: retention of personal data is a legal commitment.",
	)
}

# --- grants that cannot work -------------------------------------------------------------------
# A grant is read at query time only: one naming a purpose nobody registered or a port the product
# does not have never matches, and a row filter that does not parse or names a missing column
# denies every query it applies to. Caught here, at release, instead.

_grant_validity(gate, registry) := (_unknown_purposes(gate, registry) | _unknown_grant_ports(gate)) |
	_invalid_row_filters(gate)

# METADATA
# title: Grant for a purpose that is not registered
# description: |
#   The grant names a purpose that data.registry.purposes does not hold: it never matches.
# custom:
#   rules:
#     release/grant-unknown-purpose: error
_unknown_purposes(gate, registry) := {v |
	is_object(registry.purposes)
	grants := _grants(gate.product)
	some index
	grant := grants[index]
	some purpose in object.get(grant, "purposes", [])
	not registry.purposes[purpose]
	v := result.violation(
		"release/grant-unknown-purpose",
		"error",
		result.text([
			"the grant to ", _grant_label(grant), " names purpose '", purpose,
			"', which is not registered (known: ", concat(", ", sort(object.keys(registry.purposes))), ")",
		]),
		result.grant_location(_release_id(gate), index, null, null),
		"Use a registered purpose, or ask the guild to register it in policies/data/purposes.yaml.",
	)
}

# METADATA
# title: Grant for a port the product does not have
# description: |
#   The grant names an output port that the product does not declare: it never matches.
# custom:
#   rules:
#     release/grant-unknown-port: error
_unknown_grant_ports(gate) := {v |
	names := {port.name | some port in _release_ports(gate.product)}
	grants := _grants(gate.product)
	some index
	grant := grants[index]
	some name in object.get(grant, "ports", [])
	not name in names
	v := result.violation(
		"release/grant-unknown-port",
		"error",
		result.text([
			"the grant to ", _grant_label(grant), " names port '", name,
			"', which the product does not have (ports: ", concat(", ", sort(names)), ")",
		]),
		result.grant_location(_release_id(gate), index, name, null),
		"Name one of the product's output ports, or leave `ports:` out to grant every port.",
	)
}

# METADATA
# title: Row filter that cannot be applied
# description: |
#   The grant's row filter does not parse, uses SQL that filters may not use, or names a column
#   that a port it applies to does not have (gate.row_filter_facts, found by meshgov with sqlglot):
#   every query it applies to would be denied.
# custom:
#   rules:
#     release/row-filter-invalid: error
_invalid_row_filters(gate) := {v |
	some fact in object.get(gate, "row_filter_facts", [])
	v := result.violation(
		"release/row-filter-invalid",
		"error",
		result.text(["the row filter of the grant to ", fact.grant, ": ", fact.problem]),
		result.grant_location(_release_id(gate), object.get(fact, "index", null), fact.port, fact.column),
		"Fix `rowFilter:` (a SQL predicate over the port's columns; {principal.x} for values).",
	)
}
