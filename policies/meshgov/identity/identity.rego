# METADATA
# title: Entity identity
# description: |
#   Columns that hold the identifier of a global entity declare it, match its canonical type and
#   format, and the entity has exactly one owner that the product reaches through its inputs.
#   The cross-product facts are computed in Python over the entity graph and arrive as
#   input.identity_facts; this package turns each into a located violation and checks directly
#   that every declared entity exists in data.registry.entities.
# related_resources:
#   - ref: docs/policies.md#identity
# custom:
#   owner: guild
package meshgov.identity

import rego.v1

import data.meshgov.lib.result

# METADATA
# title: Identity violations of the product under release
# description: Every identity violation of input (product, identity_facts) against data.registry.
violations := report(input, data.registry)

# METADATA
# title: Identity violations of a gate input against a registry
# description: |
#   A fact is {kind, entity, product, port, column, detail} as meshgov.core.graph.identity makes
#   it; detail holds owner_domain, owners, expected, reason, type, format, matched or owner by kind.
#   A fact of a kind this package does not know is itself an error.
report(gate, registry) := (_from_facts(gate) | _unknown_entities(gate, registry)) | _unrecognised_facts(gate)

# kind of fact -> rule id, how to fix
_kinds := {
	"entity_unowned": {
		"rule": "identity/entity-unowned",
		"fix": "Ask the guild to give the entity exactly one owning domain in policies/data/entities.yaml.",
	},
	"entity_multiple_owners": {
		"rule": "identity/multiple-owners",
		"fix": "Only one domain may own an entity: the others reference it with `entity:` and read it from the owner.",
	},
	"identifier_type_mismatch": {
		"rule": "identity/type-mismatch",
		"fix": "Give the column the canonical type of the entity (or convert it upstream).",
	},
	"identifier_format_mismatch": {
		"rule": "identity/format-mismatch",
		"fix": "Store the identifier in the canonical format (or declare the canonical `format:`).",
	},
	"undeclared_identifier": {
		"rule": "identity/undeclared-identifier",
		"fix": "Declare `entity: <name>` on the column (this is the mapping to the canonical id), or rename it.",
	},
	"unknown_entity": {
		"rule": "identity/unknown-entity",
		"fix": "Use an entity of policies/data/entities.yaml, or ask the guild to register it.",
	},
	"owner_unreachable": {
		"rule": "identity/owner-unreachable",
		"fix": "Add an input (spec.inputs) that leads to the owner's product, so the identifier comes from its owner.",
	},
}

_facts(gate) := facts if {
	facts := gate.identity_facts
	is_array(facts)
} else := []

_field(fact, key) := object.get(fact, key, null)

_location(gate, fact) := result.location(
	object.get(fact, "product", object.get(gate.product, "id", null)),
	_field(fact, "port"),
	_field(fact, "column"),
)

_column_label(fact) := result.text(["column '", fact.column, "'"]) if _field(fact, "column") != null

_column_label(fact) := "the product" if _field(fact, "column") == null

# A fact's particulars live in its `detail` object (also accepted at the top level).
_info(fact, key) := value if {
	detail := object.get(fact, "detail", {})
	is_object(detail)
	value := object.get(detail, key, null)
	value != null
} else := object.get(fact, key, null)

_list(value) := concat(", ", [result.text([item]) | some item in value]) if is_array(value)

_list(value) := result.text([value]) if not is_array(value)

_message(fact) := result.text([
	"entity '", fact.entity, "' is carried by no product of its owning domain '",
	_info(fact, "owner_domain"), "'",
]) if fact.kind == "entity_unowned"

_message(fact) := result.text([
	"entity '", fact.entity, "' has an inconsistent owner in the registry (", _info(fact, "reason"), ")",
]) if {
	fact.kind == "entity_multiple_owners"
	_info(fact, "reason") != null
}

_message(fact) := result.text([
	"entity '", fact.entity, "' is minted by several products (", _list(_info(fact, "owners")),
	"); its owner is '", _info(fact, "expected"), "'",
]) if {
	fact.kind == "entity_multiple_owners"
	_info(fact, "reason") == null
}

_message(fact) := result.text([
	_column_label(fact), " identifies entity '", fact.entity, "' but has type '", _info(fact, "type"),
	"'; the canonical type is '", _info(fact, "expected"), "'",
]) if fact.kind == "identifier_type_mismatch"

_message(fact) := result.text([
	_column_label(fact), " identifies entity '", fact.entity, "' but declares format '",
	_info(fact, "format"), "'; the canonical format is '", _info(fact, "expected"), "'",
]) if fact.kind == "identifier_format_mismatch"

_message(fact) := result.text([
	_column_label(fact), " is named like the ", _matched_label(fact), " of entity '", fact.entity,
	"' (canonical '", _info(fact, "expected"), "') but declares no `entity:`",
]) if fact.kind == "undeclared_identifier"

_matched_label(fact) := "canonical identifier" if _info(fact, "matched") == "canonical"

_matched_label(fact) := "alias" if _info(fact, "matched") != "canonical"

_message(fact) := _unknown_entity_message(fact.column, fact.entity) if fact.kind == "unknown_entity"

_message(fact) := result.text([
	_column_label(fact), " carries entity '", fact.entity, "', owned by '", _info(fact, "owner"),
	"', but the product does not reach the owner's product through its inputs",
]) if fact.kind == "owner_unreachable"

# METADATA
# title: Identity facts as violations
# description: |
#   One violation per fact of input.identity_facts, by kind.
# custom:
#   rules:
#     identity/entity-unowned: error
#     identity/multiple-owners: error
#     identity/type-mismatch: error
#     identity/format-mismatch: error
#     identity/undeclared-identifier: error
#     identity/unknown-entity: error
#     identity/owner-unreachable: error
_from_facts(gate) := {v |
	some fact in _facts(gate)
	kind := _kinds[fact.kind]
	v := result.violation(kind.rule, "error", _message(fact), _location(gate, fact), kind.fix)
}

# METADATA
# title: Identity fact of an unknown kind
# description: |
#   Fail closed on a kind of fact this package cannot judge.
# custom:
#   rules:
#     identity/unrecognised-fact: error
_unrecognised_facts(gate) := {v |
	some fact in _facts(gate)
	not _kinds[object.get(fact, "kind", "")]
	v := result.violation(
		"identity/unrecognised-fact",
		"error",
		result.text(["identity fact of unknown kind '", object.get(fact, "kind", null), "'"]),
		_location(gate, fact),
		"Update policies/meshgov/identity to handle this kind of fact (the graph produces it).",
	)
}

# Same message for the fact and for the direct check, so the two collapse into one violation.
_unknown_entity_message(column, entity) := result.text([
	"column '", column, "' declares entity '", entity, "', which is not in the entity registry",
])

_ports(gate) := gate.product.spec.outputPorts

# METADATA
# title: Entity not in the registry
# description: |
#   A column declares `entity:` with a name that data.registry.entities does not hold.
# custom:
#   rules:
#     identity/unknown-entity: error
_unknown_entities(gate, registry) := {v |
	some port in _ports(gate)
	some col in port.columns
	entity := object.get(col, "entity", null)
	entity != null
	not registry.entities[entity]
	v := result.violation(
		"identity/unknown-entity",
		"error",
		_unknown_entity_message(col.name, entity),
		result.location(object.get(gate.product, "id", null), port.name, col.name),
		_kinds.unknown_entity.fix,
	)
}
