"""The README's quickstart runs exactly as written; the README stays short and its commands stay true."""

import re
from pathlib import Path

import matplotlib

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def quickstart() -> str:
    """The first python block under '## Quickstart', as written."""
    section = README.split("## Quickstart", 1)[1]
    return re.search(r"```python\n(.*?)```", section, flags=re.S)[1]


def test_quickstart_runs_as_written(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # sc.pl's save= writes to ./figures/
    code = quickstart()
    assert len(code.strip().splitlines()) <= 12
    namespace: dict = {}
    exec(compile(code, "README.md:quickstart", "exec"), namespace)  # the README's own code
    both = namespace["both"]
    assert both.obs["scbranch_synthetic"].sum() == 100 * 10 and (~both.obs["scbranch_synthetic"]).sum() == 700
    assert "X_umap" in both.obsm and (tmp_path / "figures" / "umap_real_and_synthetic.png").stat().st_size > 10_000


def test_readme_is_short_and_its_commands_are_ci():
    words = len(re.sub(r"```.*?```", " ", README, flags=re.S).split())  # prose; code blocks are read, not counted
    assert len(README.split()) <= 1200 and words <= 1000, (len(README.split()), words)
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ("bash scripts/install.sh", ".venv/bin/python -m pytest -q tests"):
        assert command in README and command in ci
    assert "## Security and reproducibility" in README


def test_readme_points_at_files_that_exist():
    for target in re.findall(r"\]\(((?!https?:)[^)#]+)\)", README):  # relative links and the figure
        assert (ROOT / target).exists(), target
    for path in re.findall(r"`((?:scbranch|tests|benchmarks|docs|tutorials|scripts)/[\w/.]+)`", README):
        assert (ROOT / path).exists(), path
