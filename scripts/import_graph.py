"""The import graph of the ``scbranch`` package, read from the source with ``ast`` (nothing is imported).

Prints the number of modules (files) and of units (top-level modules and subpackages, the level the architecture
is read at), the import edges between them, every import cycle (strongly connected components of more than one
node), and the private names ``scbranch.tl`` imports from ``scbranch.model._*``. Function-local imports count as
edges: hiding an import in a function hides the dependency, it does not remove it.

    python scripts/import_graph.py              # the summary
    python scripts/import_graph.py --edges      # and every unit-level edge
    python scripts/import_graph.py --check      # exit 1 on a cycle or a private model name imported by tl/
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "scbranch"


def module_name(path: Path) -> str:
    parts = ["scbranch", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved against ``current``)."""
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def read_imports(modules: dict[str, Path]) -> tuple[set[tuple[str, str]], list[tuple[str, str, str]]]:
    """File-level edges (importer, imported) within the package, and (importer, module, name) of every name
    imported ``from`` a module."""
    edges, names = set(), []
    for mod, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                src = resolve(mod, is_package, node)
                targets = [src]
                for a in node.names:  # `from . import _logging` imports a module, not a name
                    sub = f"{src}.{a.name}"
                    if sub in modules:
                        targets.append(sub)
                    else:
                        names.append((mod, src, a.name))
                if len(targets) > 1 and all(f"{src}.{a.name}" in modules for a in node.names):
                    targets.remove(src)  # `from .. import _anndata`: the submodule only, not the package
            for t in targets:
                while t and t not in modules:  # `scbranch.x.y` of a name: the module that holds it
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    edges.add((mod, t))
    return edges, names


def unit(mod: str) -> str:
    """``scbranch.model._io`` → ``model``: top-level module or subpackage."""
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "scbranch"


def cycles(nodes, edges) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    succ = {n: sorted({b for a, b in edges if a == n}) for n in nodes}
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for n in sorted(nodes):
        if n not in index:
            visit(n)
    return out


def graph() -> dict:
    modules = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
    edges, names = read_imports(modules)
    file_edges = edges  # a package's __init__ importing its own files counts: a cycle may run through it
    units = sorted({unit(m) for m in modules} - {"scbranch"})
    unit_edges = {(unit(a), unit(b)) for a, b in file_edges if unit(a) != unit(b) and "scbranch" not in (unit(a),
                                                                                                       unit(b))}
    private = sorted({(m, s, n) for m, s, n in names if m.startswith("scbranch.tl")
                      and s.startswith("scbranch.model.") and s.rpartition(".")[2].startswith("_")})
    return {"modules": sorted(modules), "file_edges": sorted(file_edges), "units": units,
            "unit_edges": sorted(unit_edges), "file_cycles": cycles(modules, file_edges),
            "unit_cycles": cycles(units, unit_edges), "tl_private": private}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", action="store_true", help="list the unit-level edges")
    parser.add_argument("--check", action="store_true", help="exit 1 on a cycle or a private name imported by tl/")
    args = parser.parse_args(argv)
    g = graph()
    print(f"modules (files): {len(g['modules'])}; file-level import edges: {len(g['file_edges'])}")
    print(f"units (top-level modules and subpackages): {len(g['units'])}; unit-level edges: {len(g['unit_edges'])}")
    print(f"cycles between files: {len(g['file_cycles'])}" + "".join(f"\n    {c}" for c in g["file_cycles"]))
    print(f"cycles between units: {len(g['unit_cycles'])}" + "".join(f"\n    {c}" for c in g["unit_cycles"]))
    print(f"private model names imported by tl/: {len(g['tl_private'])}"
          + "".join(f"\n    {m}: {s}.{n}" for m, s, n in g["tl_private"]))
    if args.edges:
        for a, b in g["unit_edges"]:
            print(f"    {a} -> {b}")
    return int(args.check and bool(g["file_cycles"] or g["unit_cycles"] or g["tl_private"]))


if __name__ == "__main__":
    sys.exit(main())
