"""Ontology hierarchies: the Cell Ontology (CL), offline, from the ``cellxgene-ontology-guide`` package, or any
ontology file (OBO, OWL, OBO-Graphs JSON) read with ``pronto`` (:func:`read_ontology`).

An ontology here is a dict ``{term id: {"label", "synonyms", "deprecated", "replaced_by", "ancestors":
{ancestor: distance}}}``, the form cellxgene-ontology-guide ships CL in; every function takes one (default CL).

Labels are mapped to CL terms, in order: an explicit user mapping ``{label: "CL:..."}`` (explicit beats any
heuristic), an ontology-ID column (or labels that are themselves CL IDs), the exact CL label, a synonym, the
curated mappings scbranch ships for well-known label sets (pbmc68k_reduced's ``bulk_labels``), and last a
case/punctuation-normalized match ("CD14+ Monocyte" ~ "CD14-positive monocyte"). Unmatched labels raise one
error listing each with its 3 closest CL names. Deprecated terms follow ``replaced_by`` with a warning.

CL is a DAG; we choose one tree deterministically. Nodes: the observed terms, their lowest common ancestor
(the common ancestor nearest to all of them: smallest summed distance, then smallest ID), and every
ancestor below it shared by at least two observed terms. Each node's parent is its *nearest* ancestor among
the nodes (shortest-path distance), ties broken by the fewest observed descendants (the most specific
grouping), then the smallest ID. Unary chains collapse. A label whose term is an ancestor of another
label's term (mixed depths: "T cell" and "CD8 T cell") becomes a leaf directly under that ancestor's node,
beside its subtypes: its cells are the node's "unspecified" members.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from functools import cache

from .. import _logging as logg
from ._tree import Hierarchy, Node

CL_ID = re.compile(r"^CL:\d{7}$")
TERM_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*:\S+$")  # any OBO-style CURIE
ONTOLOGY_SUFFIXES = (".obo", ".owl", ".json")

# labels of well-known datasets → CL terms (curated: tried before the normalized fuzzy match)
KNOWN_LABELS = {
    # scanpy.datasets.pbmc68k_reduced().obs["bulk_labels"]
    "CD14+ Monocyte": "CL:0001054",  # CD14-positive monocyte
    "Dendritic": "CL:0000451",  # dendritic cell
    "CD19+ B": "CL:0000236",  # B cell
    "CD4+/CD25 T Reg": "CL:0000815",  # regulatory T cell
    "CD8+ Cytotoxic T": "CL:0000794",  # CD8-positive, alpha-beta cytotoxic T cell
    "CD8+/CD45RA+ Naive Cytotoxic": "CL:0000900",  # naive thymus-derived CD8-positive, alpha-beta T cell
    "CD56+ NK": "CL:0000623",  # natural killer cell
    "CD4+/CD45RO+ Memory": "CL:0000897",  # CD4-positive, alpha-beta memory T cell
    "CD34+": "CL:0008001",  # hematopoietic precursor cell
    "CD4+/CD45RA+/CD25- Naive T": "CL:0000895",  # naive thymus-derived CD4-positive, alpha-beta T cell
}


@cache
def _cl() -> dict:
    from cellxgene_ontology_guide.ontology_parser import OntologyParser

    return OntologyParser().cxg_schema.ontology("CL")


def read_ontology(path: str) -> dict:
    """An ontology file (``.obo``, ``.owl`` or OBO-Graphs ``.json``) in the form above, via ``pronto``: the
    Python reader of the OBO Foundry's formats, maintained and fast (its OBO parser is ``fastobo``, in Rust).
    Only ``is_a`` relations make the tree, as for CL."""
    import pronto

    if not os.path.isfile(path):
        msg = f"ontology file {str(path)!r} not found"
        raise FileNotFoundError(msg)
    try:  # pronto/fastobo/rdflib errors name neither the file nor what to do
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pronto's notes on unknown OBO headers
            onto = pronto.Ontology(str(path))
            terms = list(onto.terms())
            parents = {t.id: sorted(p.id for p in t.superclasses(distance=1, with_self=False)) for t in terms}
    except Exception as err:
        msg = (f"could not read the ontology file {str(path)!r} ({type(err).__name__}: {err}); it must be a valid "
               "OBO, OWL or OBO-Graphs JSON file")
        raise ValueError(msg) from err
    out = {}
    for t in terms:
        dist, frontier = {}, list(parents[t.id])
        d = 1
        while frontier:  # breadth first: each ancestor at its shortest distance
            nxt = []
            for a in frontier:
                if a == t.id:  # the term is its own ancestor: no tree can be drawn from these links
                    msg = (f"the is_a links of the ontology file {str(path)!r} form a cycle through {t.id} "
                           f"({t.name or t.id}); an ontology's is_a links must not loop")
                    raise ValueError(msg)
                if a not in dist:
                    dist[a] = d
                    nxt += parents.get(a, [])
            frontier, d = nxt, d + 1
        out[t.id] = {"label": t.name or t.id, "synonyms": sorted(s.description for s in t.synonyms),
                     "deprecated": bool(t.obsolete), "ancestors": dist,
                     "replaced_by": next((r.id for r in t.replaced_by), None)}
    if not out:
        msg = f"{path} holds no ontology terms"
        raise ValueError(msg)
    return out


def normalize(label: str) -> str:
    s = label.lower()
    s = re.sub(r"[\s_-]*positive\b", "+", s)
    s = re.sub(r"[\s_-]*negative\b", "-", s)
    s = re.sub(r"\bcells?\b|\blymphocytes?\b", "", s)
    return re.sub(r"[^a-z0-9+-]", "", s).rstrip("s")


@cache
def _cl_indices() -> tuple[dict, dict, dict]:
    return _build_indices(_cl())


def _indices(onto: dict) -> tuple[dict, dict, dict]:
    """Label, synonym and normalized-name indices: cached for CL (large, permanent), built for a file's ontology
    (a cache keyed by a transient dict's id() could hand a later ontology a freed one's index)."""
    return _cl_indices() if onto is _cl() else _build_indices(onto)


def _build_indices(onto: dict) -> tuple[dict, dict, dict]:
    exact, syn, norm = {}, {}, {}
    for term, info in sorted(onto.items()):
        if info.get("deprecated"):
            continue
        exact.setdefault(info["label"], term)
        norm.setdefault(normalize(info["label"]), term)
        for s in info.get("synonyms") or []:
            syn.setdefault(s, term)
            norm.setdefault(normalize(s), term)
    return exact, syn, norm


def label(term: str, onto: dict | None = None) -> str:
    return (onto or _cl())[term]["label"]


def ancestors(term: str, onto: dict | None = None) -> dict[str, int]:
    """Ancestors with their shortest distance, the term itself at 0."""
    return {term: 0, **dict((onto or _cl())[term].get("ancestors") or {})}


def resolve(term: str, onto: dict | None = None) -> str:
    """A valid, current term: follows ``replaced_by`` for deprecated terms (with a warning)."""
    onto = onto or _cl()
    info = onto.get(term)
    if info is None:
        msg = f"{term!r} is not a term of the ontology"
        raise ValueError(msg)
    if info.get("deprecated"):
        new = info.get("replaced_by")
        if not new or new not in onto:
            msg = f"{term!r} ({info['label']}) is deprecated in the ontology and has no replacement"
            raise ValueError(msg)
        logg.warning(f"{term} ({info['label']}) is deprecated; using its replacement {new} ({label(new, onto)})")
        return resolve(new, onto)
    return term


def map_labels(labels: Sequence[str], *, ids: Mapping[str, str] | None = None,
               mapping: Mapping[str, str] | None = None, onto: dict | None = None) -> dict[str, str]:
    """Map each label to a term (see module docstring for the order); one error lists all failures."""
    is_cl = onto is None
    onto = onto or _cl()
    exact, syn, norm = _indices(onto)
    known = KNOWN_LABELS if is_cl else {}
    out, failed = {}, []
    for lab in labels:
        term = (mapping or {}).get(lab) or (ids or {}).get(lab)
        if term is None and (CL_ID if is_cl else TERM_ID).match(lab) and lab in onto:
            term = lab
        if term is None and lab in exact:
            _check_unique_label(lab, onto)
        term = term or exact.get(lab) or syn.get(lab) or known.get(lab) or norm.get(normalize(lab))
        if term is None:
            failed.append(lab)
        else:
            out[lab] = resolve(term, onto)
    if failed:
        names = list(exact)
        what, short = ("Cell Ontology", "CL") if is_cl else ("ontology", "ontology")
        lines = [f"  {lab!r}: closest {short} names {difflib.get_close_matches(lab, names, n=3, cutoff=0.0)}"
                 for lab in failed]
        msg = (f"could not map these labels to {what} terms; pass ontology_mapping={{label: term id}} "
               "or an ontology_key column:\n" + "\n".join(lines))
        raise ValueError(msg)
    return out


def _check_unique_label(lab: str, onto: dict) -> None:
    """A label that is the name of two current terms: which one is meant only the user knows."""
    terms = sorted(t for t, info in onto.items() if info["label"] == lab and not info.get("deprecated"))
    if len(terms) > 1:
        msg = (f"the label {lab!r} is the name of {len(terms)} ontology terms {terms}; choose one with "
               f"ontology_mapping={{{lab!r}: term id}} (or an ontology_key column)")
        raise ValueError(msg)


def ontology_hierarchy(term_of: Mapping[str, str], onto: dict | None = None) -> Hierarchy:
    """The tree joining the observed labels (``{label: term}``); see the module docstring for the rule."""
    onto = onto or _cl()
    by_term: dict[str, list[str]] = {}
    for lab, term in term_of.items():
        by_term.setdefault(term, []).append(lab)
    observed = sorted(by_term)
    anc = {t: ancestors(t, onto) for t in observed}
    common = set.intersection(*(set(a) for a in anc.values()))
    if not common:
        msg = "the labels' ontology terms share no common ancestor"
        raise ValueError(msg)
    root = min(common, key=lambda a: (sum(anc[t][a] for t in observed), a))
    def below_root(a: str) -> bool:
        return a == root or root in ancestors(a, onto)

    cover: dict[str, set[str]] = {}
    for t in observed:
        for a in anc[t]:
            cover.setdefault(a, set()).add(t)
    nodes = {a for a, ts in cover.items() if (len(ts) >= 2 or a in by_term) and below_root(a)} | {root}
    parent_of = {}
    for n in sorted(nodes - {root}):
        cands = [(d, len(cover[a]), a) for a, d in ancestors(n, onto).items() if a != n and a in nodes]
        parent_of[n] = min(cands)[2]
    leaf_names = set(term_of)

    def name_of(term: str) -> str:
        lab = label(term, onto)
        return lab if lab not in leaf_names else f"{lab} [{term}]"

    def build(term: str) -> Node | None:
        kids = [k for k in (build(c) for c in sorted(k for k, p in parent_of.items() if p == term)) if k]
        labs = [Node(lab) for lab in sorted(by_term.get(term, []))]
        if not kids and len(labs) <= 1:
            return labs[0] if labs else None  # a grouping whose members all found nearer parents: dropped
        return Node(name_of(term), labs + kids)

    return Hierarchy(build(root))
