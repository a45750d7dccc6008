"""Sphinx configuration: API reference from the numpy-style docstrings, the README and tutorials as pages.

Built offline (no intersphinx, no notebook execution): ``sphinx-build -W -b html docs docs/_build`` (the test
suite runs it, ``tests/test_docs.py``). The tutorials are percent-format scripts (``# %%`` cells, runnable as
they are); :func:`_tutorial_pages` turns each into a MyST page (markdown cells as text, code cells as code,
each followed by its stored output and figures) at build time, so the docs show exactly what the tests run.
"""

from __future__ import annotations

import re
from pathlib import Path

import scbranch

ROOT = Path(__file__).resolve().parents[1]

project = "scbranch"
author = "the scbranch developers"
copyright = "2026, the scbranch developers"
release = version = scbranch.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.napoleon",
              "sphinx.ext.mathjax", "sphinx.ext.viewcode"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_templates"]
templates_path = ["_templates"]
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "description"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
myst_heading_anchors = 3
html_theme = "alabaster"
html_title = f"scbranch {release}"
suppress_warnings = ["myst.header", "myst.xref_missing", "ref.python"]  # README's links point at GitHub files
nitpicky = False


def _tutorial_pages() -> None:
    """tutorials/NN_name.py (percent format) → docs/tutorials/NN_name.md (MyST), each code cell followed by the
    output and figures it gave when ``scripts/render_tutorials.py`` last ran it (``_static/tutorials/``), so the
    pages show results without the build executing anything. A cell edited since then is shown without output
    (``tests/test_docs.py`` fails until the outputs are rendered again)."""
    import hashlib
    import json

    out = Path(__file__).parent / "tutorials"
    out.mkdir(exist_ok=True)
    stored_dir = Path(__file__).parent / "_static" / "tutorials"
    for script in sorted((ROOT / "tutorials").glob("[0-9]*.py")):
        record = stored_dir / f"{script.stem}.json"
        meta = json.loads(record.read_text()) if record.exists() else {"cells": []}
        stored = {c["hash"]: c for c in meta["cells"]}
        cells = []
        for block in re.split(r"^# %%", script.read_text(), flags=re.M)[1:]:
            if block.startswith(" [markdown]"):
                text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                                 for line in block.splitlines()[1:])
                cells.append(text.strip())
                continue
            source = block.split("\n", 1)[1].strip() if "\n" in block else ""
            cells.append(f"```python\n{source}\n```")
            result = stored.get(hashlib.sha256(source.encode()).hexdigest()[:16])
            if result and result["text"].strip():
                cells.append(f"```text\n{result['text'].rstrip()}\n```")
            for image in (result or {}).get("images", []):
                cells.append(f"![output of the cell above](../_static/tutorials/{image})")
        if meta.get("cells"):
            budget = f"max_steps={meta['steps']}" if meta.get("steps") else "its default training budget"
            cells.insert(1, f"*Outputs from `scripts/render_tutorials.py` ({budget}).*")
        (out / f"{script.stem}.md").write_text("\n\n".join(cells) + "\n")


_tutorial_pages()
