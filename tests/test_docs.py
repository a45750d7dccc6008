"""The documentation builds (offline, warnings as errors) and the lint rules hold: both run in CI this way."""

import hashlib
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import scbranch

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = ["tl", "pl", "model", "hierarchy", "metrics", "datasets", "simulate"]


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
    for page in sorted((ROOT / "tutorials").glob("[0-9]*.py")):  # each tutorial shows its stored figures
        text = (html / "tutorials" / f"{page.stem}.html").read_text()
        assert "<img" in text and "output of the cell above" in text, page.stem
    assert (html / "generated" / "scbranch.tl.concat_real_synthetic.html").exists()
    for name in ("benchmarks", "how_it_works", "migrating"):
        assert (html / f"{name}.html").exists()


def test_api_reference_lists_every_public_name():
    """Each public module's ``__all__`` against docs/api.md (names re-exported at the top, e.g. ``Hierarchy``,
    may be listed there once)."""
    api = (ROOT / "docs" / "api.md").read_text()
    listed = set(re.findall(r"^   ([\w.]+)$", api, flags=re.M))
    missing = [f"{m}.{name}" for m in PUBLIC_MODULES for name in importlib.import_module(f"scbranch.{m}").__all__
               if f"{m}.{name}" not in listed and not (name in scbranch.__all__ and name in listed)]
    missing += [name for name in scbranch.__all__ if name[0].isupper() and name not in listed]
    assert not missing, f"public names missing from docs/api.md: {missing}"


def test_stored_tutorial_outputs_match_the_tutorials():
    """docs show outputs rendered by scripts/render_tutorials.py: stale after a tutorial's code changed."""
    for script in sorted((ROOT / "tutorials").glob("[0-9]*.py")):
        record = ROOT / "docs" / "_static" / "tutorials" / f"{script.stem}.json"
        assert record.exists(), f"run: python scripts/render_tutorials.py {script.stem}"
        blocks = re.split(r"^# %%", script.read_text(), flags=re.M)[1:]
        code = [b.split("\n", 1)[1].strip() for b in blocks if not b.startswith(" [markdown]")]
        stored = [c["hash"] for c in json.loads(record.read_text())["cells"]]
        fresh = [hashlib.sha256(c.encode()).hexdigest()[:16] for c in code]
        assert stored == fresh, f"{script.name} changed since its outputs were rendered: " \
                                f"python scripts/render_tutorials.py {script.stem}"
        for cell in json.loads(record.read_text())["cells"]:
            for image in cell["images"]:
                assert (record.parent / image).exists(), image


def test_ruff_rules_hold():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "scbranch", "tests", "benchmarks",
                          "tutorials", "docs"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-4000:]
