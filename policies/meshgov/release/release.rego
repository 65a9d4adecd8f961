# METADATA
# title: release (placeholder)
# description: Placeholder until the release rules land.
# custom:
#   owner: guild
package meshgov.release

import rego.v1

# METADATA
# title: release violations
# description: None yet.
violations := report(input, data.registry)

# METADATA
# title: release violations of a gate input
# description: None yet.
report(_, _) := set()
