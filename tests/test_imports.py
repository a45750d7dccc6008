"""Importing scbranch warns nothing: scverse projects run pytest with ``filterwarnings = error``."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("stmt", ["import scbranch; import scbranch.hierarchy",
                                  "import scbranch as sb; sb.tl, sb.pl, sb.metrics, sb.datasets, sb.BranchedDiffusion"])
def test_import_under_warnings_as_errors(stmt):
    out = subprocess.run([sys.executable, "-W", "error", "-c", stmt], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
