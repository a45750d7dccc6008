"""A loaded ``config.json``'s values, checked against their ranges before anything is built from them.

The manifest proves that the files are the ones that were saved, not that whoever saved (and re-signed) them
meant well: a config asking for ``width=200000`` would allocate hundreds of GB, ``beta_max=Infinity`` or
negative ``type_counts`` would load and fail much later, a shortened ``var_names`` would pair genes with the
wrong weights. Each value here is checked for its type and range (bounds far above any model scbranch fits),
and the gene count against the saved weights; the networks are then checked against the weights on PyTorch's
``meta`` device before they are allocated (:func:`scbranch.module._shapes.check_shapes`).
"""

from __future__ import annotations

import math
from pathlib import Path

MAX_WIDTH = 16_384  # units of a network layer (default 128; the count decoder 512)
MAX_BLOCKS = 64  # residual blocks of the score network (default 3)
MAX_COMPS = 4_096  # model-space dimensions (default 15-30)
MAX_BETA = 1_000.0  # the VP-SDE's beta_max (default 20)
MAX_STEPS = 10**9


class _Checker:
    def __init__(self, file: Path):
        self.file = file

    def fail(self, key: str, wanted: str, value) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        msg = f"{self.file}: {key} must be {wanted}, got {shown}; the model folder is damaged or was edited"
        raise ValueError(msg)

    def integer(self, key: str, value, lo: int, hi: int, *, optional: bool = False) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.fail(key, f"an integer in [{lo:,}, {hi:,}]", value)

    def number(self, key: str, value, lo: float, hi: float, *, hi_open: bool = False, optional: bool = False) -> None:
        if value is None and optional:
            return
        ok = (not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
              and lo <= value and (value < hi if hi_open else value <= hi))
        if not ok:
            self.fail(key, f"a finite number in [{lo:g}, {hi:g}{')' if hi_open else ']'}", value)

    def strings(self, key: str, value, *, distinct: bool = True) -> None:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, "a list of strings", value)
        if distinct and len(set(value)) != len(value):
            self.fail(key, "a list of distinct strings", value)

    def mapping(self, key: str, value) -> dict:
        if not isinstance(value, dict):
            self.fail(key, "a JSON object", value)
        return value


def check_meta(meta: dict, file: Path) -> None:
    """Check a model's ``config.json`` (``meta``, read from ``file``) before anything is built from it."""
    ck = _Checker(file)
    c = ck.mapping("config", meta.get("config"))
    for key in ("hierarchy", "history"):
        ck.mapping(key, meta.get(key))
    if not isinstance(meta.get("is_trained"), bool):
        ck.fail("is_trained", "true or false", meta.get("is_trained"))
    ck.mapping("representation_meta", meta.get("representation_meta", {}))

    ck.strings("config.types", c.get("types"))
    if not c["types"] or not all(t.strip() for t in c["types"]):
        ck.fail("config.types", "a non-empty list of non-blank names", c["types"])
    ck.strings("config.var_names", c.get("var_names"))
    ck.integer("config.width", c.get("width"), 1, MAX_WIDTH)
    ck.integer("config.n_blocks", c.get("n_blocks"), 1, MAX_BLOCKS)
    ck.integer("config.n_comps", c.get("n_comps"), 1, MAX_COMPS, optional=True)
    ck.integer("config.random_state", c.get("random_state", 0), 0, 2**63 - 1)
    ck.number("config.dropout", c.get("dropout", 0.0), 0.0, 1.0, hi_open=True)
    ck.number("config.beta_min", c.get("beta_min"), 0.0, MAX_BETA)
    ck.number("config.beta_max", c.get("beta_max"), 0.0, MAX_BETA)
    if not 0 < c["beta_min"] < c["beta_max"]:
        ck.fail("config.beta_min, beta_max", f"0 < beta_min < beta_max <= {MAX_BETA:g}",
                (c["beta_min"], c["beta_max"]))
    ck.number("config.softness", c.get("softness"), 1e-12, 1e12, optional=True)
    ck.number("config.sharing", c.get("sharing", 0.5), 0.0, 1.0)
    for key in ("variances", "type_weights"):
        values = c.get(key)
        if values is not None:
            if not isinstance(values, list):
                ck.fail(f"config.{key}", "a list of non-negative numbers", values)
            for v in values:
                ck.number(f"config.{key}", v, 0.0, math.inf)
    if c.get("type_counts") is not None:
        for ty, n in ck.mapping("config.type_counts", c["type_counts"]).items():
            ck.integer(f"config.type_counts[{ty!r}]", n, 0, MAX_STEPS)
    if c.get("heads") is not None:
        for node, head in ck.mapping("config.heads", c["heads"]).items():
            ck.integer(f"config.heads[{node!r}]", head, 0, 10**6)
    if c.get("branch_blocks") is not None:
        blocks = c["branch_blocks"]
        if not isinstance(blocks, list) or not blocks:
            ck.fail("config.branch_blocks", "a non-empty list of block sizes", blocks)
        for b in blocks:
            ck.integer("config.branch_blocks", b, 1, 10**6)
    if c.get("classifier") is not None:
        spec = ck.mapping("config.classifier", c["classifier"])
        ck.strings("config.classifier.types", spec.get("types"))
        ck.integer("config.classifier.steps", spec.get("steps"), 1, MAX_STEPS, optional=True)
    if c.get("conditions") is not None:
        cond = ck.mapping("config.conditions", c["conditions"])
        ck.strings("config.conditions.keys", cond.get("keys"))
        cats = cond.get("categories")
        if not isinstance(cats, list) or len(cats) != len(cond["keys"]):
            ck.fail("config.conditions.categories", "one list of categories per key", cats)
        for key, values in zip(cond["keys"], cats):
            ck.strings(f"config.conditions.categories[{key!r}]", values)
    for name, part in meta.get("representation_meta", {}).items():
        if isinstance(part, dict) and "hidden" in part:
            ck.integer(f"representation_meta.{name}.hidden", part["hidden"], 1, MAX_WIDTH)


def gene_dimension(state: dict) -> int | None:
    """The number of genes the representation's saved weights are for (None if they do not say)."""
    for key in ("components", "scvi/px_r"):  # PCA loadings (n_comps, genes); scVI's gene dispersions
        if key in state and getattr(state[key], "ndim", 0) >= 1:
            return int(state[key].shape[-1])
    return None


def check_genes(meta: dict, state: dict, file: Path) -> None:
    """``var_names`` must name exactly the genes the saved weights are for."""
    n_genes, n_names = gene_dimension(state), len(meta["config"]["var_names"])
    if n_genes is not None and n_genes != n_names:
        msg = (f"{file}: var_names lists {n_names:,} genes but the saved weights are for {n_genes:,}; the model "
               "folder is damaged or was edited")
        raise ValueError(msg)
