# METADATA
# title: identity (placeholder)
# description: Placeholder until the identity rules land.
# custom:
#   owner: guild
package meshgov.identity

import rego.v1

# METADATA
# title: identity violations
# description: None yet.
violations := report(input, data.registry)

# METADATA
# title: identity violations of a gate input
# description: None yet.
report(_, _) := set()
