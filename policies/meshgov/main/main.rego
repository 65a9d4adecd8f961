# METADATA
# title: Release gate entrypoint
# description: |
#   Collects the violations of every release-gate concern (pii, identity, release) for one gate
#   input {product, previous, scan, identity_facts}. The concerns are listed explicitly: the access
#   package answers a different question and has no violations.
# related_resources:
#   - ref: docs/policies.md
# custom:
#   owner: guild
package meshgov.main

import rego.v1

import data.meshgov.lib.result

_concerns := ["pii", "identity", "release"]

# METADATA
# title: Every release-gate violation
# description: The union of the violations of the concerns; a concern that is missing is itself one.
# entrypoint: true
# custom:
#   owner: guild
violations contains v if {
	some concern in _concerns
	some v in data.meshgov[concern].violations
}

# Fail closed: a concern package that is missing or broken must not pass silently.
violations contains v if {
	some concern in _concerns
	not data.meshgov[concern].violations
	v := result.violation(
		"meshgov/concern-missing",
		"error",
		sprintf("policy package 'meshgov.%s' defines no violations", [concern]),
		result.location(object.get(object.get(input, "product", {}), "id", null), null, null),
		"Restore the package in policies/meshgov/ (run `meshgov policy lint`).",
	)
}
