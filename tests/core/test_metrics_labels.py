"""Label values in the Prometheus text are escaped as its format says, whatever they hold."""

from __future__ import annotations

from meshgov.metrics import Metrics


def test_a_label_value_cannot_add_lines_or_labels() -> None:
    metrics = Metrics()
    metrics.active_revision = 'r1"} 1\nmeshgov_forged_total 99\n\\'
    text = metrics.render()
    line = next(ln for ln in text.splitlines() if ln.startswith("meshgov_active_policy_revision"))
    assert line == (
        'meshgov_active_policy_revision{revision="r1\\"} 1\\nmeshgov_forged_total 99\\n\\\\"} 1'
    )
    assert not any(ln.startswith("meshgov_forged_total") for ln in text.splitlines())
