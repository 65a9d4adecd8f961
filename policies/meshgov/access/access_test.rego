package meshgov.access_test

import rego.v1

import data.meshgov.access

# Tests call access.decide(request, catalog, registry) rather than `decision with input as`:
# regopy 1.5 mishandles `with input as` over rules that call functions.

_registry := {"purposes": {
	"analytics": {"pii": false},
	"fraud_detection": {"pii": true},
}}

# The catalogue as the policy reads it: its access view indexed by product id
# (meshgov.gateway.catalog_policy_data; with one product, every level of the index is keyed by the
# id's first character), where a port lists only its PII and restricted columns, as objects and as
# key sets (pii, restricted), and each grant carries its text for reasons.
_column(extra) := object.union({"classification": "internal", "pii": false, "mask": null, "maskExpr": null}, extra)

_indexed(id, view) := {"at": 0, "by": {c: {"at": 0, "by": {c: {"at": 0, "by": {c: {id: view}}}}}}} if {
	c := substring(id, 0, 1)
}

_catalog := {"access": _indexed("customer/customers", {
	"id": "customer/customers",
	"domain": "customer",
	"status": "active",
	"ports": {"customers": {"columns": {
		"email": _column({"classification": "confidential", "pii": true, "mask": "hash"}),
		"ssn": _column({"classification": "restricted", "pii": true}),
	}, "masks": {"email": {"kind": "hash", "expr": null}},
	"pii": {"email": true, "ssn": true}, "restricted": {"ssn": true}}},
	"grants": [
		{
			"to": {"ids": [], "groups": ["analysts"], "domains": []},
			"text": "grant to groups [analysts] for purposes [analytics]",
			"purposes": ["analytics"], "ports": [], "rowFilter": "region = {principal.region}",
		},
		{
			"to": {"ids": [], "groups": ["fraud"], "domains": []},
			"text": "grant to groups [fraud] for purposes [fraud_detection]",
			"purposes": ["fraud_detection"], "ports": [], "rowFilter": null,
		},
	],
	"grantsTo": {"ids": {}, "groups": {"analysts": [0], "fraud": [1]}, "domains": {}},
})}

_request(principal, purpose) := {
	"principal": principal, "purpose": purpose,
	"product": "customer/customers", "port": "customers",
}

_analyst := {"id": "ann", "groups": ["analysts"], "domain": "analytics", "attributes": {"region": "EU"}}

test_deny_by_default if {
	nobody := {"id": "x", "groups": [], "domain": null, "attributes": {}}
	result := access.decide(_request(nobody, "analytics"), _catalog, _registry)
	result.allow == false
	result.row_filters == []
	result.masks == {}
	result.hidden_columns == []
	count(result.reasons) == 1
}

test_a_denial_without_a_purpose_says_so if {
	nobody := {"id": "x", "groups": [], "domain": null, "attributes": {}}
	result := access.decide(_request(nobody, null), _catalog, _registry)
	result.allow == false
	endswith(result.reasons[0], ") without a purpose (deny by default)")
	named := access.decide(_request(nobody, "analytics"), _catalog, _registry)
	endswith(named.reasons[0], ") for purpose analytics (deny by default)")
}

test_analyst_gets_filter_masks_and_hidden_columns if {
	result := access.decide(_request(_analyst, "analytics"), _catalog, _registry)
	result.allow == true
	result.row_filters == ["region = {principal.region}"]
	result.masks == {"email": {"kind": "hash", "expr": null}}
	result.hidden_columns == ["ssn"]
}

test_output_has_exactly_the_contract_keys if {
	result := access.decide(_request(_analyst, "analytics"), _catalog, _registry)
	object.keys(result) == {"allow", "reasons", "row_filters", "masks", "hidden_columns"}
}

test_wrong_purpose_denied if {
	result := access.decide(_request(_analyst, "fraud_detection"), _catalog, _registry)
	result.allow == false
}

test_pii_cleared_with_pii_purpose_sees_everything if {
	investigator := {"id": "fred", "groups": ["fraud"], "domain": "payments", "attributes": {"clearances": ["pii"]}}
	result := access.decide(_request(investigator, "fraud_detection"), _catalog, _registry)
	result.allow == true
	result.masks == {}
	result.hidden_columns == []
	result.row_filters == []
}

test_clearance_without_pii_purpose_stays_masked if {
	investigator := {
		"id": "fred", "groups": ["analysts"], "domain": "payments",
		"attributes": {"region": "EU", "clearances": ["pii"]},
	}
	result := access.decide(_request(investigator, "analytics"), _catalog, _registry)
	result.masks.email.kind == "hash"
}

test_own_domain_unmasked if {
	owner := {"id": "olga", "groups": [], "domain": "customer", "attributes": {}}
	result := access.decide(_request(owner, "analytics"), _catalog, _registry)
	result.allow == true
	result.masks == {}
	result.row_filters == []
}

test_unregistered_purpose_denied_even_for_owner if {
	owner := {"id": "olga", "groups": [], "domain": "customer", "attributes": {}}
	result := access.decide(_request(owner, "gossip"), _catalog, _registry)
	result.allow == false
}

test_unknown_port_denied if {
	request := object.union(_request(_analyst, "analytics"), {"port": "nope"})
	result := access.decide(request, _catalog, _registry)
	result.allow == false
}

test_product_ids_that_are_not_domain_slash_name_are_unknown if {
	every id in ["customer", "customer/customers/extra", "/customers", "customers/customer", 42, null] {
		result := access.decide(object.union(_request(_analyst, "analytics"), {"product": id}), _catalog, _registry)
		result.allow == false
		startswith(result.reasons[0], "unknown product ")
	}
}
