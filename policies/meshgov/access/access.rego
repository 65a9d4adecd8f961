# METADATA
# title: Read-time access
# description: |
#   The access decision for one (principal, purpose, product, port): deny by default; the
#   product's own grants (spec.access.grants) allow; global rules only narrow: PII is masked unless
#   the principal holds the `pii` clearance and the purpose allows PII, `restricted` columns
#   without a mask are hidden from principals without clearance, unknown purposes and retired
#   products are denied. A principal of the owning domain sees its products unmasked and unfiltered.
#   Reads the catalogue's access view, data.catalog.access (the products' access views indexed by
#   id, loaded once per catalogue revision, see decide below), and nothing else of data.catalog:
#   the gateway then loads only that view into the engine (data.catalog.products is left out of
#   the decision's plan unless a rule reachable from it refers to it).
# related_resources:
#   - ref: docs/enforcement.md
# custom:
#   owner: guild
package meshgov.access

import rego.v1

# METADATA
# title: The access decision for input
# description: "{allow, reasons, row_filters, masks, hidden_columns} for input {principal, purpose, product, port}."
# entrypoint: true
decision := _for_product(input, product, data.registry.purposes) if {
	product := _product
} else := _unknown(input)

# METADATA
# title: The access decision for a request against a catalogue and a registry
# description: |
#   Arguments rather than input/data so that tests call it directly (regopy 1.5 mishandles
#   `with input as` over rules that call functions). The catalogue is read through its access view
#   (catalog.access, prepared once per catalogue revision by meshgov.gateway.catalog_policy_data):
#   per product, per port the PII and restricted columns as key sets and their declared masks, the
#   grants and an index of them by target. Written for rego-cpp's cost model: every step (a
#   builtin, a comprehension, a rule body) costs microseconds, so the rules below use lookups and
#   set operations on those key sets rather than scans and per-column calls.
decide(request, catalog, registry) := _for_product(request, product, registry.purposes) if {
	product := _indexed(catalog.access, request.product)
} else := _unknown(request)

# --- finding the product -------------------------------------------------------------------------
# data.catalog.access indexes the access views by product id in a tree three levels deep: each
# level is {"at": i, "by": {character: level below}}, the ids below it grouped by their character
# at position i (chosen per level by meshgov.access_data.access_index so that no group is large);
# the last level holds the views by id.
# Why: rego-cpp finds an object key by walking the keys before it (about 0.5 µs each), so products
# keyed by domain then name made the last of 10,000 products walk 200 keys; here each level holds
# at most one key per character in use. The lookup is written for both engines' costs: rego-cpp
# copies what a function argument or a builtin's argument holds of the data (indexing the tree
# passed as an argument cost 3-4x; object.get of it more still), so the decision reads
# data.catalog.access in the rule's own body (_product), where binding a level is not a copy;
# regorus evaluates a chain of references indexed by variables (x[a][b][c]) about 40 µs slower
# than one step per level, as written here. _indexed is the same lookup on arguments (for decide,
# the tests' entry).
_product := product if {
	id := input.product
	is_string(id)
	level1 := data.catalog.access.by[substring(id, data.catalog.access.at, 1)]
	level2 := level1.by[substring(id, level1.at, 1)]
	level3 := level2.by[substring(id, level2.at, 1)]
	product := level3[id]
}

_indexed(index, id) := product if {
	is_string(id)
	level1 := index.by[substring(id, index.at, 1)]
	level2 := level1.by[substring(id, level1.at, 1)]
	level3 := level2.by[substring(id, level2.at, 1)]
	product := level3[id]
}

_for_product(request, product, purposes) := _decision(request, product, port, purposes) if {
	port := product.ports[request.port]
} else := _denied([concat("", ["product ", request.product, " has no output port '", _str(request.port), "'"])])

_unknown(request) := _denied([concat("", ["unknown product ", _str(request.product)])])

# rego-cpp's sort() of a set yields an array that compares unequal to an equal literal; re-collect it.
_sorted(values) := [value | some value in sort(values)]

_denied(reasons) := {"allow": false, "reasons": reasons, "row_filters": [], "masks": {}, "hidden_columns": []}

# --- global rules that only narrow: registered purpose, retired products, the owning domain ---

_decision(request, product, port, purposes) := result if {
	principal := request.principal
	purpose := object.get(request, "purpose", null)
	_purpose_registered(purpose, purposes)
	own := _is_own(product.domain, principal)
	_not_retired(own, product.status)
	result := _outcome(own, request, product, port, principal, purpose, purposes)
} else := _denied(_deny_reasons(request, product, purposes))

_purpose_registered(null, _) := true

_purpose_registered(purpose, purposes) if purposes[purpose]

_is_own(domain, principal) := true if {
	domain != null
	principal.domain == domain
} else := false

# A retired product stays readable by its own domain only.
_not_retired(true, _) := true

_not_retired(false, status) if status != "retired"

# A principal of the owning domain sees its products unmasked and unfiltered.
_outcome(true, request, product, _, principal, _, _) := {
	"allow": true,
	"reasons": [concat("", ["principal '", _str(principal.id), "' belongs to ", product.domain, ", the owning domain"])],
	"row_filters": [],
	"masks": {},
	"hidden_columns": [],
}

# Anyone else needs a grant of the product naming them (id, group or domain), for the purpose
# (or any) and the port (or any); then PII and restricted columns are narrowed (see below).
_outcome(false, request, product, port, principal, purpose, purposes) := result if {
	grants := [grant |
		some i in sort(_targeted(product.grantsTo, principal))
		grant := product.grants[i]
		_listed_or_any(purpose, grant.purposes)
		_listed_or_any(request.port, grant.ports)
	]
	count(grants) > 0
	clearances := object.get(principal.attributes, "clearances", [])
	pii := object.keys(port.pii)
	restricted := object.keys(port.restricted)
	pii_cleared := _pii_cleared(clearances, purpose, purposes)
	narrowed := _masked_pii(pii_cleared, pii) | _narrowed_restricted(clearances, pii_cleared, restricted, pii)
	unmasked := narrowed - object.keys(port.masks)
	masks := object.union(
		object.filter(port.masks, narrowed),
		{name: {"kind": "null", "expr": null} | some name in unmasked - restricted},
	)
	hidden := _sorted(unmasked & restricted)
	result := {
		"allow": true,
		"reasons": array.concat(
			_grant_reasons(grants, request),
			array.concat(_mask_reasons(masks), _hidden_reasons(hidden, principal)),
		),
		"row_filters": _row_filters(grants),
		"masks": masks,
		"hidden_columns": hidden,
	}
}

# --- grants --------------------------------------------------------------------------------------
# grantsTo indexes the grants by target (ids/groups/domains: value → grant positions), so that only
# the grants naming the principal are looked at.
_targeted(index, principal) := {i | some i in index.ids[principal.id]} | {i |
	some group in principal.groups
	some i in index.groups[group]
} | {i | some i in index.domains[principal.domain]}

_listed_or_any(_, values) if count(values) == 0

_listed_or_any(value, values) if value in values

# Row filters: alternatives, one per matching grant; a grant without a filter sees all rows.
_row_filters(grants) := [] if {
	some grant in grants
	grant.rowFilter == null
} else := _sorted({grant.rowFilter | some grant in grants})

# --- columns ---------------------------------------------------------------------------------
# PII is masked unless the principal holds the `pii` clearance and the purpose allows PII.
# Restricted columns are narrowed unless the principal holds the `restricted` clearance (or, for a
# restricted PII column, is cleared for PII). A narrowed column with a declared mask is masked with
# it; without one it becomes null, unless it is restricted: then it is hidden.
_pii_cleared(clearances, purpose, purposes) := true if {
	"pii" in clearances
	purposes[purpose].pii == true
} else := false

_masked_pii(true, _) := set()

_masked_pii(false, pii) := pii

_narrowed_restricted(clearances, pii_cleared, restricted, pii) := set() if {
	"restricted" in clearances
} else := restricted - pii if {
	pii_cleared
} else := restricted

# --- reasons -----------------------------------------------------------------------------------
# Built with concat only: rego-cpp's sprintf re-quotes strings that come out of concat. One reason
# per grant, one for all masks and one for all hidden columns (the masks and hidden_columns fields
# say which and how). Column names are sorted: a set's own order is the engine's (regopy and
# regorus differ), and a reason must read the same under both.
_str(value) := value if {
	is_string(value)
} else := sprintf("%v", [value])

_list(values) := concat("", ["[", concat(", ", [_str(v) | some v in values]), "]"])

_mask_reasons(masks) := [] if {
	count(masks) == 0
} else := [concat("", [
	"columns masked (personal data without the 'pii' clearance for this purpose, or restricted without clearance): ",
	concat(", ", _sorted(object.keys(masks))),
])]

_hidden_reasons(hidden, principal) := [] if {
	count(hidden) == 0
} else := [concat("", [
	"columns hidden (classified restricted, no clearance for principal '", _str(principal.id), "'): ",
	concat(", ", hidden),
])]

_deny_reasons(request, product, purposes) := [concat("", [
	"purpose '", _str(request.purpose), "' is not registered (data.registry.purposes; registered: ",
	concat(", ", sort(object.keys(purposes))), ")",
])] if {
	not _purpose_registered(object.get(request, "purpose", null), purposes)
} else := [concat("", ["product ", product.id, " is retired"])] if {
	product.status == "retired"
} else := [concat("", [
	"no grant of ", request.product,
	" allows principal '", _str(object.get(object.get(request, "principal", {}), "id", null)),
	"' (groups ", _list(object.get(object.get(request, "principal", {}), "groups", [])),
	", domain ", _str(object.get(object.get(request, "principal", {}), "domain", null)),
	") ", _for_purpose(object.get(request, "purpose", null)), " (deny by default)",
	_granted_purposes_hint(product, request),
])]

# The request's purpose as a denial names it (a request may give none).
_for_purpose(purpose) := "without a purpose" if {
	purpose == null
} else := concat("", ["for purpose ", _str(purpose)])

# Which purposes a grant of this port names the principal for: a denial says what to ask for.
_granted_purposes_hint(product, request) := concat("", [
	"; a grant exists for purpose ", concat(", ", sort(granted)),
]) if {
	principal := object.get(request, "principal", {})
	granted := {purpose |
		some i in _targeted(product.grantsTo, principal)
		grant := product.grants[i]
		_listed_or_any(object.get(request, "port", null), grant.ports)
		some purpose in grant.purposes
	}
	count(granted) > 0
} else := ""

_grant_reasons(grants, request) := [text |
	some grant in grants
	text := concat("", [grant.text, " allows ", request.product, ":", request.port])
]
