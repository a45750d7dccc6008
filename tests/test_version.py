"""One version: ``scbranch.__version__``; pyproject reads it (hatch), CITATION.cff, the CHANGELOG and the CLI agree."""

import re
import tomllib
from pathlib import Path

import pytest

import scbranch
from scbranch.cli import main

ROOT = Path(__file__).resolve().parents[1]
# hatchling's default pattern for [tool.hatch.version] path = ... (hatchling/version/source/regex.py)
HATCH_PATTERN = r"""(?i)^(__version__|VERSION) *= *([\'"])v?(?P<version>.+?)\2"""


def test_pyproject_reads_the_version_from_the_package():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in meta["project"] and "version" in meta["project"]["dynamic"]
    path = ROOT / meta["tool"]["hatch"]["version"]["path"]
    found = re.search(HATCH_PATTERN, path.read_text(), flags=re.M)
    assert found and found["version"] == scbranch.__version__


def test_citation_and_changelog_agree():
    cff = re.search(r"^version: *(\S+)$", (ROOT / "CITATION.cff").read_text(), flags=re.M)
    assert cff and cff[1] == scbranch.__version__
    latest = re.search(r"^## (\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(), flags=re.M)
    assert latest and latest[1] == scbranch.__version__


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"scbranch {scbranch.__version__}"
