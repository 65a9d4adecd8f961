package meshgov.lib.result_test

import rego.v1

import data.meshgov.lib.result

test_violation_has_every_field if {
	v := result.violation("pii/x", "error", "m", result.location("d/p", "o", "c"), "f")
	v == {
		"rule": "pii/x",
		"severity": "error",
		"message": "m",
		"location": {"product": "d/p", "port": "o", "column": "c"},
		"fix": "f",
	}
}

test_location_allows_null_port_and_column if {
	result.location("d/p", null, null) == {"product": "d/p", "port": null, "column": null}
}
