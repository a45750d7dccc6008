"""The documentation builds (offline, warnings as errors) and the lint rules hold: both run in CI this way."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_without_warnings(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                          "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(tmp_path / "html")],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-4000:]
    html = tmp_path / "html"
    api = (html / "generated" / "scbranch.tl.fit.html").read_text()
    assert "model_kwargs" in api and "key_added" in api  # the API reference comes from the docstrings
    assert (html / "tutorials" / "03_add_cell_type_and_transmute.html").exists()
    assert "transmute" in (html / "tutorials" / "03_add_cell_type_and_transmute.html").read_text()
    assert (html / "generated" / "scbranch.model.TrainConfig.html").exists()


def test_ruff_rules_hold():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "scbranch", "tests", "benchmarks",
                          "tutorials", "docs"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-4000:]
