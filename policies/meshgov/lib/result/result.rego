# METADATA
# title: Violation constructor
# description: |
#   Builds the one violation shape every concern package reports:
#   {rule, severity, message, location: {product, port, column}, fix}.
#   Rule ids and severities are literals at the call site because regopy has no rego.metadata.*.
# related_resources:
#   - ref: docs/policies.md
# custom:
#   owner: guild
package meshgov.lib.result

import rego.v1

# METADATA
# title: A violation
# description: The violation object for rule id, severity (error|warning), message, location, fix.
violation(rule, severity, message, location, fix) := {
	"rule": rule,
	"severity": severity,
	"message": message,
	"location": location,
	"fix": fix,
}

# METADATA
# title: A location
# description: Where a violation points; null port/column for product- or port-level findings.
location(product, port, column) := {"product": product, "port": port, "column": column}

# METADATA
# title: The location of a grant
# description: |
#   A location that also names the grant (its index in spec.access.grants), so that the finding
#   points at the grant's line; port and column as in location (null when not about one).
grant_location(product, grant, port, column) := object.union(
	location(product, port, column),
	{"grant": grant},
)

# METADATA
# title: Message text
# description: |
#   Concatenates strings and other values into one message. Use it instead of sprintf for any
#   string that a builtin produced (object.get, concat, lower...): regopy 1.5's sprintf renders
#   such strings with their JSON quotes and breaks the output.
text(parts) := concat("", [_text(part) | some part in parts])

_text(part) := part if is_string(part)

_text(part) := sprintf("%v", [part]) if not is_string(part)
