# METADATA
# title: Release gate entrypoint
# description: |
#   Collects the violations of every release-gate concern (pii, identity, release) for one gate
#   input {product, previous, scan, identity_facts}. The concerns are listed explicitly: the access
#   package answers another question. A concern that goes missing is a compile error (its report
#   function is undefined), so the gate fails closed.
# related_resources:
#   - ref: docs/policies.md
# custom:
#   owner: guild
package meshgov.main

import rego.v1

import data.meshgov.identity
import data.meshgov.pii
import data.meshgov.release

# METADATA
# title: Every release-gate violation
# description: The union of the violations of the concerns for input, against data.registry.
# entrypoint: true
# custom:
#   owner: guild
violations := report(input, data.registry)

# METADATA
# title: Every release-gate violation of a gate input against a registry
# description: What `violations` answers, callable from tests without `with input as`.
report(gate, registry) := pii.report(gate, registry) | identity.report(gate, registry) | release.report(gate, registry)
