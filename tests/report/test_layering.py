"""msmtrec.report only renders: importing it loads no model, trainer, bench or data code."""

from tests.conftest import modules_loaded_by


def test_importing_the_report_loads_no_computing_layer():
    loaded = modules_loaded_by("msmtrec.report")
    assert "msmtrec.report.flows" in loaded
    assert not [m for m in loaded if m.startswith(("msmtrec.models", "msmtrec.train", "msmtrec.bench", "msmtrec.data"))]
