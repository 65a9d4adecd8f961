# METADATA
# title: Read-time access
# description: |
#   The access decision for one (principal, purpose, product, port): deny by default; the
#   product's own grants (spec.access.grants) allow; global rules only narrow: PII is masked unless
#   the principal holds the `pii` clearance and the purpose allows PII, `restricted` columns
#   without a mask are hidden from principals without clearance, unknown purposes and retired
#   products are denied. A principal of the owning domain sees its products unmasked and unfiltered.
#   Catalogue products live at data.catalog.products["domain/name"] (loaded once per revision).
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
decision := decide(input, data.catalog, data.registry)

# METADATA
# title: The access decision for a request against a catalogue and a registry
# description: |
#   Arguments rather than input/data so that tests call it directly (regopy 1.5 mishandles
#   `with input as` over rules that call functions). The catalogue is read through its access view
#   (catalog.access[product]: id, domain, status, grants, and per port only the columns a rule can
#   narrow, keyed by name, and their declared masks), prepared once per catalogue revision by meshgov.gateway.catalog_policy_data:
#   lookups by key instead of scans over every port and column keep one decision cheap in rego-cpp.
decide(request, catalog, registry) := result if {
	product := catalog.access[request.product]
	port := product.ports[request.port]
	result := _decision(request, product, port, registry)
} else := _denied([concat("", ["unknown product ", _str(request.product)])]) if {
	not catalog.access[request.product]
} else := _denied([concat("", ["product ", request.product, " has no output port '", _str(request.port), "'"])])

# rego-cpp's sort() of a set yields an array that compares unequal to an equal literal; re-collect it.
_sorted(values) := [value | some value in sort(values)]

_denied(reasons) := {"allow": false, "reasons": reasons, "row_filters": [], "masks": {}, "hidden_columns": []}

_decision(request, product, port, registry) := result if {
	principal := object.get(request, "principal", {})
	purpose := object.get(request, "purpose", null)
	denials := _global_denials(product, principal, purpose, registry)
	count(denials) == 0
	own := _is_own(product, principal)
	grants := _grants_for(product, principal, purpose, request.port)
	_granted(own, grants)
	clearances := object.get(object.get(principal, "attributes", {}), "clearances", [])
	narrowed := _narrowed(own, port.columns, clearances, _pii_cleared(clearances, purpose, registry))
	masks := object.union(object.filter(port.masks, narrowed), {name: {"kind": "null", "expr": col.maskExpr} |
		some name in narrowed
		not port.masks[name]
		col := port.columns[name]
		col.classification != "restricted"
	})
	hidden := [name |
		some name in sort(narrowed)
		not port.masks[name]
		port.columns[name].classification == "restricted"
	]
	result := {
		"allow": true,
		"reasons": array.concat(
			_allow_reasons(own, grants, product, principal, request),
			_column_reasons(masks, hidden, principal),
		),
		"row_filters": _row_filters(own, grants),
		"masks": masks,
		"hidden_columns": hidden,
	}
} else := _denied(_deny_reasons(request, product, registry))

_is_own(product, principal) := true if {
	domain := object.get(principal, "domain", null)
	domain != null
	domain == product.domain
} else := false

_granted(true, _) := true

_granted(false, grants) if count(grants) > 0

# --- global rules that only narrow -------------------------------------------------------------

_global_denials(product, principal, purpose, registry) := {concat("", ["purpose '", _str(purpose), "' is not registered (data.registry.purposes)"]) |
	purpose != null
	not registry.purposes[purpose]
} | {concat("", ["product ", product.id, " is retired"]) |
	product.status == "retired"
	not _is_own(product, principal)
}

# --- grants ------------------------------------------------------------------------------------

# The access view gives every grant all its fields (to.ids/groups/domains, purposes, ports,
# rowFilter) and indexes them by target (grantsTo.ids/groups/domains: value → grant positions), so
# that only the grants naming the principal are looked at.
_grants_for(product, principal, purpose, port_name) := [grant |
	some i in sort(_targeted(product.grantsTo, principal))
	grant := product.grants[i]
	_listed_or_any(purpose, grant.purposes)
	_listed_or_any(port_name, grant.ports)
]

_targeted(index, principal) := {i | some i in index.ids[principal.id]} | {i |
	some group in object.get(principal, "groups", [])
	some i in index.groups[group]
} | {i | some i in index.domains[principal.domain]}

_listed_or_any(_, values) if count(values) == 0

_listed_or_any(value, values) if value in values

# --- row filters: alternatives, one per matching grant; a grant without a filter sees all rows --

_row_filters(true, _) := []

_row_filters(false, grants) := [] if {
	some grant in grants
	grant.rowFilter == null
} else := _sorted({grant.rowFilter | some grant in grants})

# --- columns: masks and hidden columns ---------------------------------------------------------
# Sets of column names (no per-column function calls: they are slow in rego-cpp). The access view
# lists only PII and restricted columns; the rules below still decide which of them are narrowed.

_pii_cleared(clearances, purpose, registry) := true if {
	"pii" in clearances
	registry.purposes[purpose].pii == true
} else := false

# PII is masked unless cleared; restricted is hidden (or masked when it declares a mask) unless
# cleared for it ("restricted" clearance, or the PII clearance for a restricted PII column).
# A narrowed column with a mask is masked with it (the view's port.masks: name → {kind, expr} of
# the columns that declare one), without one it becomes null, unless it is restricted: then it is
# hidden.
_narrowed(true, _, _, _) := set()

_narrowed(false, columns, clearances, pii_cleared) := {name |
	pii_cleared == false
	some name
	columns[name].pii == true
} | {name |
	not "restricted" in clearances
	some name
	col := columns[name]
	col.classification == "restricted"
	[col.pii, pii_cleared] != [true, true]
}

# --- reasons -----------------------------------------------------------------------------------
# Built with concat only: rego-cpp's sprintf re-quotes strings that come out of concat.

_str(value) := value if {
	is_string(value)
} else := sprintf("%v", [value])

_list(values) := concat("", ["[", concat(", ", [_str(v) | some v in values]), "]"])

_allow_reasons(true, _, product, principal, _) := [concat("", ["principal '", _str(principal.id), "' belongs to ", product.domain, ", the owning domain"])]

_allow_reasons(false, grants, _, _, request) := [reason |
	some grant in grants
	who := concat(", ", [text |
		some key in ["ids", "groups", "domains"]
		values := grant.to[key]
		count(values) > 0
		text := concat("", [key, " [", concat(", ", values), "]"])
	])
	reason := concat("", ["grant to ", who, " for purposes [", concat(", ", grant.purposes), "] allows ", request.product, ":", request.port])
]

# One reason for all masks and one for all hidden columns (per-column text is slow in rego-cpp;
# the masks and hidden_columns fields already say which and how).
_column_reasons(masks, hidden, principal) := array.concat(_mask_reasons(masks), _hidden_reasons(hidden, principal))

_mask_reasons(masks) := [] if {
	count(masks) == 0
} else := [concat("", [
	"columns masked (personal data without the 'pii' clearance for this purpose, or restricted without clearance): ",
	concat(", ", _mask_texts(masks)),
])]

_mask_texts(masks) := [text |
	some name
	kind := masks[name].kind
	text := concat("", [name, " (", kind, ")"])
]

_hidden_reasons(hidden, principal) := [] if {
	count(hidden) == 0
} else := [concat("", [
	"columns hidden (classified restricted, no clearance for principal '", _str(principal.id), "'): ",
	concat(", ", hidden),
])]

_deny_reasons(request, product, registry) := _sorted(denials) if {
	principal := object.get(request, "principal", {})
	denials := _global_denials(product, principal, object.get(request, "purpose", null), registry)
	count(denials) > 0
} else := [concat("", [
	"no grant of ", request.product, " allows principal '", _str(object.get(object.get(request, "principal", {}), "id", null)),
	"' (groups ", _list(object.get(object.get(request, "principal", {}), "groups", [])),
	", domain ", _str(object.get(object.get(request, "principal", {}), "domain", null)),
	") for purpose ", _str(object.get(request, "purpose", null)), " (deny by default)",
])]
