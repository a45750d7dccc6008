"""Run the tutorials and the README's quickstart; store their outputs and figures for the docs.

    .venv/bin/python scripts/render_tutorials.py            # all tutorials, their own training budgets
    .venv/bin/python scripts/render_tutorials.py 01_quickstart --steps 500

The docs build never executes code (CI builds them offline in seconds). Instead this script runs each
tutorial (``tutorials/NN_name.py``, percent format) cell by cell, the way a notebook would, and writes
``docs/_static/tutorials/NN_name.json`` — per code cell its printed output, the value of a last bare expression,
and the figures it drew (PNG files beside the JSON) — plus the README's figure (``docs/_static/
quickstart_umap.png``, from the README's quickstart as written). ``docs/conf.py`` puts them under each cell. Each
cell's entry carries a hash of its source: ``tests/test_docs.py`` fails when a tutorial changed since its
outputs were rendered, so rerun this script after editing a tutorial (about 5 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "_static" / "tutorials"
MAX_TEXT = 4000  # characters of output kept per cell


def cells(script: Path) -> list[tuple[str, str]]:
    """[(kind, source)] of a percent-format script: "markdown" or "code"."""
    out = []
    for block in re.split(r"^# %%", script.read_text(), flags=re.M)[1:]:
        kind = "markdown" if block.startswith(" [markdown]") else "code"
        out.append((kind, block.split("\n", 1)[1].strip() if "\n" in block else ""))
    return out


def source_hash(source: str) -> str:
    return hashlib.sha256(source.strip().encode()).hexdigest()[:16]


def run_cell(source: str, namespace: dict) -> str:
    """Execute a cell; its stdout, then the repr of a last bare expression (as a notebook shows it)."""
    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(tree, "<cell>", "exec"), namespace)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
            if value is not None and not _is_plot(value):
                print(value.to_string(max_rows=30) if hasattr(value, "to_string") else repr(value))
    text = buf.getvalue()
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\n…"


def _is_plot(value) -> bool:
    """Axes, a Figure, or a list/array of Axes: shown as the figure, not as text."""
    first = value
    if isinstance(value, list | tuple) or type(value).__name__ == "ndarray":
        first = next(iter(value.ravel() if hasattr(value, "ravel") else value), None)
    return type(first).__module__.startswith("matplotlib")


def figures(dest: Path, stem: str, index: int, figdir: Path, seen: set[Path]) -> list[str]:
    """The cell's figures: matplotlib figures left open, and files ``save=`` wrote to scanpy's figdir."""
    import matplotlib.pyplot as plt

    new = [p for p in sorted(figdir.glob("*.png")) if p not in seen]
    seen.update(new)
    names = []
    for k, num in enumerate(plt.get_fignums()):  # figures still open: drawn without save= (or kept open)
        name = f"{stem}-{index}-{k}.png"
        plt.figure(num).savefig(dest / name, dpi=80, bbox_inches="tight")
        names.append(name)
    plt.close("all")
    if not names:  # scanpy closes what it saved: take the files instead
        for path in new:
            name = f"{stem}-{index}-{len(names)}.png"
            shutil.copy(path, dest / name)
            names.append(name)
    return names


def render(script: Path, steps: int | None) -> None:
    import matplotlib
    import scanpy as sc

    matplotlib.use("Agg")
    stem, work = script.stem, Path(tempfile.mkdtemp())
    for old in OUT.glob(f"{stem}-*.png"):
        old.unlink()
    os.environ.pop("SCBRANCH_TUTORIAL_STEPS", None)
    if steps:
        os.environ["SCBRANCH_TUTORIAL_STEPS"] = str(steps)
    cwd, namespace, records, seen = Path.cwd(), {"__name__": "__main__"}, [], set()
    os.chdir(work)
    sc.settings.figdir = work / "figures"
    try:
        for index, (kind, source) in enumerate(cells(script)):
            if kind != "code":
                continue
            text = run_cell(source, namespace)
            records.append({"cell": index, "hash": source_hash(source), "text": text,
                            "images": figures(OUT, stem, index, work / "figures", seen)})
            print(f"{stem} cell {index}: {len(text)} characters, {len(records[-1]['images'])} figure(s)",
                  file=sys.stderr)
    finally:
        os.chdir(cwd)
    meta = {"tutorial": f"tutorials/{script.name}", "steps": steps, "cells": records}
    (OUT / f"{stem}.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")


def render_readme_figure() -> None:
    """The README's quickstart as written; its UMAP becomes the README's figure."""
    import matplotlib

    matplotlib.use("Agg")
    code = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text().split("## Quickstart", 1)[1],
                     flags=re.S)[1]
    cwd, work = Path.cwd(), Path(tempfile.mkdtemp())
    os.chdir(work)
    try:
        exec(compile(code, "README.md:quickstart", "exec"), {"__name__": "__main__"})
    finally:
        os.chdir(cwd)
    shutil.copy(work / "figures" / "umap_real_and_synthetic.png", ROOT / "docs" / "_static" / "quickstart_umap.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="tutorial stems (default: all), or 'readme' for its figure only")
    parser.add_argument("--steps", type=int, default=None, help="training budget (default: each tutorial's own)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    names = args.names or ["readme", *sorted(p.stem for p in (ROOT / "tutorials").glob("[0-9]*.py"))]
    for name in names:
        if name == "readme":
            render_readme_figure()
        else:
            render(ROOT / "tutorials" / f"{name}.py", args.steps)


if __name__ == "__main__":
    main()
