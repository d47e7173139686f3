"""msmtrec.report only renders: importing it loads no model, trainer, bench or data code."""

import subprocess
import sys


def test_importing_the_report_loads_no_computing_layer():
    code = "import sys, msmtrec.report; print(' '.join(m for m in sys.modules if m.startswith('msmtrec')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "msmtrec.report.flows" in loaded
    assert not [m for m in loaded if m.startswith(("msmtrec.models", "msmtrec.train", "msmtrec.bench", "msmtrec.data"))]
