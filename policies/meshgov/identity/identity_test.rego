package meshgov.identity_test

import rego.v1

import data.meshgov.identity

_registry := {"entities": {"customer": {
	"owner": {"domain": "customer", "product": "customer/customers"},
	"canonical": {"name": "customer_id", "type": "string", "format": "^C[0-9]{7}$"},
	"aliases": ["cust_id", "client_id"],
}}}

_identifier_column(entity) := {"name": "cust_ref", "type": "string", "entity": entity}

_identity_gate(columns, facts) := {
	"product": {"id": "marketing/audience", "spec": {"outputPorts": [{"name": "main", "columns": columns}]}},
	"previous": null, "scan": [], "identity_facts": facts,
}

_fact(kind, extra) := object.union(
	{"kind": kind, "entity": "customer", "product": "marketing/audience", "port": "main", "column": "cust_ref"},
	extra,
)

_found(gate) := identity.report(gate, _registry)

_one(fact) := only if {
	found := [v | some v in _found(_identity_gate([_identifier_column("customer")], [fact]))]
	count(found) == 1
	only := found[0]
}

test_declared_known_entity_without_facts_is_clean if {
	_found(_identity_gate([_identifier_column("customer")], [])) == set()
}

test_column_without_entity_is_clean if {
	_found(_identity_gate([{"name": "region", "type": "string", "entity": null}], [])) == set()
}

test_unknown_entity_is_violation if {
	found := [x | some x in _found(_identity_gate([_identifier_column("client")], []))]
	count(found) == 1
	v := found[0]
	v.rule == "identity/unknown-entity"
	v.severity == "error"
	v.message == "column 'cust_ref' declares entity 'client', which is not in the entity registry"
	v.location == {"product": "marketing/audience", "port": "main", "column": "cust_ref"}
}

test_unknown_entity_fact_and_direct_check_are_one_violation if {
	fact := _fact("unknown_entity", {"entity": "client"})
	count(_found(_identity_gate([_identifier_column("client")], [fact]))) == 1
}

test_type_mismatch_fact_names_both_types if {
	v := _one(_fact("identifier_type_mismatch", {"detail": {"expected": "string", "type": "integer"}}))
	v.rule == "identity/type-mismatch"
	v.message == "column 'cust_ref' identifies entity 'customer' but has type 'integer'; the canonical type is 'string'"
}

test_format_mismatch_fact_is_violation if {
	v := _one(_fact("identifier_format_mismatch", {"detail": {"expected": "^C[0-9]{7}$", "format": "^[0-9]+$"}}))
	v.rule == "identity/format-mismatch"
	v.message == concat("", [
		"column 'cust_ref' identifies entity 'customer' but declares format '^[0-9]+$'; ",
		"the canonical format is '^C[0-9]{7}$'",
	])
}

test_undeclared_identifier_fact_is_violation if {
	detail := {"matched": "alias", "expected": "customer_id"}
	v := _one(_fact("undeclared_identifier", {"column": "client_id", "detail": detail}))
	v.rule == "identity/undeclared-identifier"
	v.location.column == "client_id"
	v.message == concat("", [
		"column 'client_id' is named like the alias of entity 'customer' (canonical 'customer_id') ",
		"but declares no `entity:`",
	])
}

test_unowned_entity_fact_is_violation if {
	v := _one(_fact("entity_unowned", {"column": null, "port": null, "detail": {"owner_domain": "customer"}}))
	v.rule == "identity/entity-unowned"
	v.message == "entity 'customer' is carried by no product of its owning domain 'customer'"
	v.location == {"product": "marketing/audience", "port": null, "column": null}
}

test_multiple_owners_fact_lists_owners if {
	detail := {"owners": ["crm/contacts", "customer/customers"], "expected": "customer/customers"}
	v := _one(_fact("entity_multiple_owners", {"detail": detail}))
	v.rule == "identity/multiple-owners"
	v.message == concat("", [
		"entity 'customer' is minted by several products (crm/contacts, customer/customers); ",
		"its owner is 'customer/customers'",
	])
}

test_inconsistent_registry_owner_fact_gives_the_reason if {
	v := _one(_fact("entity_multiple_owners", {"detail": {"reason": "registry: owner outside domain"}}))
	v.rule == "identity/multiple-owners"
	contains(v.message, "(registry: owner outside domain)")
}

test_top_level_particulars_are_accepted if {
	v := _one(_fact("owner_unreachable", {"owner": "customer/customers"}))
	contains(v.message, "owned by 'customer/customers'")
}

test_unreachable_owner_fact_names_owner if {
	v := _one(_fact("owner_unreachable", {"detail": {"owner": "customer/customers"}}))
	v.rule == "identity/owner-unreachable"
	contains(v.message, "owned by 'customer/customers'")
}

test_fact_of_unknown_kind_fails_closed if {
	v := _one(_fact("entity_on_fire", {}))
	v.rule == "identity/unrecognised-fact"
	v.severity == "error"
	contains(v.message, "'entity_on_fire'")
}

test_fact_without_product_uses_the_gate_product if {
	fact := object.remove(_fact("owner_unreachable", {"detail": {"owner": "customer/customers"}}), ["product"])
	v := _one(fact)
	v.location.product == "marketing/audience"
}

test_every_fact_kind_has_a_rule if {
	kinds := ["entity_unowned", "entity_multiple_owners", "identifier_type_mismatch",
		"identifier_format_mismatch", "undeclared_identifier", "unknown_entity", "owner_unreachable"]
	every kind in kinds {
		v := _one(_fact(kind, {"detail": {"owners": ["a"], "owner": "x", "expected": "e", "type": "t"}}))
		v.rule != "identity/unrecognised-fact"
		startswith(v.rule, "identity/")
	}
}

test_registry_entities_are_known if {
	every entity in ["customer", "order", "product", "payment"] {
		col := _identifier_column(entity)
		identity.report(_identity_gate([col], []), data.registry) == set()
	}
}

test_null_or_missing_facts_are_clean if {
	gate := _identity_gate([_identifier_column("customer")], null)
	_found(gate) == set()
	_found(object.remove(gate, ["identity_facts"])) == set()
}
