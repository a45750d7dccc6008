"""Command line: ``scbranch demo`` trains on pbmc68k_reduced, generates every type, writes .h5ad + PNG."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import __version__
from . import _logging as logg


def demo(out: Path, *, n_per_type: int = 200, max_steps: int | None = None, random_state: int = 0,
         progress: bool | None = None) -> dict:
    """The main job: fit on a real dataset that ships offline, generate, compare, write results."""
    import anndata as ad

    from . import datasets, metrics, pl, tl

    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    adata = datasets.pbmc68k()
    model = tl.fit(adata, groupby="bulk_labels", max_steps=max_steps, random_state=random_state, progress=progress)
    t_fit = time.perf_counter() - t_start
    syn = tl.generate(model, n_per_type, random_state=random_state, progress=progress)
    alone = tl.generate(model, n_per_type, shared=False, random_state=random_state, progress=progress)
    shared_st, alone_st = syn.uns["scbranch"]["generate"], alone.uns["scbranch"]["generate"]

    table = metrics.centroid_table(adata.obsm["X_scbranch"], adata.obs["bulk_labels"],
                                   syn.obsm["X_scbranch"], syn.obs["bulk_labels"])
    genes = _gene_level(model, adata, random_state)
    model.save(out / "model", overwrite=True)
    pl.synthetic_vs_real(adata, syn, groupby="bulk_labels", save=out / "pbmc68k_real_vs_synthetic.png")
    pl.realism(adata, syn, groupby="bulk_labels", save=out / "pbmc68k_realism.png")
    adata.obs["scbranch_synthetic"] = False
    both = ad.concat([adata, syn], join="inner", merge="first")
    both.obs["bulk_labels"] = both.obs["bulk_labels"].astype("category")
    both.uns["scbranch"] = {k: v for k, v in adata.uns["scbranch"].items()} | {"generate": shared_st}
    both.write_h5ad(out / "pbmc68k_real_and_synthetic.h5ad")

    n_ok = int(table["ok"].sum())
    lines = [
        "",
        f"scbranch demo — pbmc68k_reduced (.raw, {adata.n_vars} genes), {len(model.types)} types, "
        f"{len(model.branches)} branches",
        f"hierarchy: {model.hierarchy.to_newick()}",
        "",
        "| sampling (euler_maruyama, 50 steps) | network calls | cell states evaluated (cells × steps) |",
        "|---|---:|---:|",
        f"| shared tree walk | {shared_st['nfe']} | {shared_st['n_evals']} |",
        f"| each type alone | {alone_st['nfe']} | {alone_st['n_evals']} |",
        f"| ratio shared / alone | {shared_st['nfe'] / alone_st['nfe']:.2f} | "
        f"{shared_st['n_evals'] / alone_st['n_evals']:.2f} |",
        "",
        "| cell type | n real | n synthetic | dist to own centroid | dist to nearest other | nearest other "
        "| frac nearest own |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for t, r in table.iterrows():
        lines.append(f"| {t} | {r.n_real} | {r.n_synthetic} | {r.dist_own:.2f} | {r.dist_nearest_other:.2f} | "
                     f"{r.nearest_other} | {r.frac_nearest_own:.2f} |")
    lines += [
        "",
        f"{n_ok}/{len(table)} types: synthetic centroid closer to its own real type than to any other.",
        "",
        "gene by gene, against one random half of the real cells (mean over types; the model saw all cells);",
        "decoder floor = the other half's cells put in model space and decoded back (model.reconstruct):",
        "| metric | other real half (floor) | decoder floor | synthetic cells |",
        "|---|---:|---:|---:|",
        *[f"| {GENE_LABELS[k]} | {genes['floor'][k]:.3f} | {genes['decoder'][k]:.3f} | {genes['synthetic'][k]:.3f} |"
          for k in GENE_LABELS],
        "",
        f"fit {t_fit:.0f}s, total {time.perf_counter() - t_start:.0f}s; wrote {out}/pbmc68k_real_and_synthetic.h5ad, "
        f"{out}/pbmc68k_real_vs_synthetic.png, {out}/pbmc68k_realism.png, {out}/model/",
    ]
    logg.info("\n".join(lines))
    return {"table": table, "shared": shared_st, "alone": alone_st, "n_ok": n_ok, "genes": genes}


GENE_LABELS = {
    "frac_nonzero_syn": "fraction of entries > 0",
    "expressing_mae": "per gene: fraction-expressing MAE",
    "var_log2_ratio": "per gene: |log2 variance ratio|",
    "mean_r": "per gene: Pearson r of means",
    "marker_overlap": "top-20 markers shared",
    "hvg_overlap": "top-200 HVGs shared",
    "corr_error": "gene-gene correlation error (top 100 HVGs)",
    "knn_mixing": "kNN mixing (1 = ideal, > 1 hubs)",
}


def _gene_level(model, adata, random_state: int) -> dict:
    """Gene-level realism against one real half: the other real half, its decode(encode(cells)) (the decoder's
    own floor) and synthetic cells of its composition."""
    import numpy as np

    from . import metrics, tl
    from .model import lognorm_of

    x, y = model.get_lognorm(adata), adata.obs["bulk_labels"].astype(str).to_numpy()
    rng = np.random.default_rng(random_state)
    half = np.zeros(len(y), bool)
    for t in np.unique(y):
        idx = np.flatnonzero(y == t)
        half[rng.choice(idx, len(idx) // 2, replace=False)] = True
    n_a = {t: int(n) for t, n in zip(*np.unique(y[half], return_counts=True))}
    syn = tl.generate(model, n_a, random_state=random_state + 1, progress=False)
    kw = {"var_names": model.var_names, "groupby": "bulk_labels", "random_state": random_state}
    rec = model.reconstruct(adata[half], random_state=random_state + 2)
    return {"floor": metrics.gene_level_quality(x[~half], y[~half], x[half], y[half], **kw),
            "decoder": metrics.gene_level_quality(x[~half], y[~half], lognorm_of(rec), y[half], **kw),
            "synthetic": metrics.gene_level_quality(x[~half], y[~half], lognorm_of(syn),
                                                    syn.obs["bulk_labels"].astype(str), **kw)}


def _fit(args) -> int:
    from . import tl

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        msg = f"{out} exists and is not empty; pass --overwrite to replace it (checked before training)"
        raise FileExistsError(msg)
    if args.overwrite:  # only a model folder is replaced: any other is refused now, not after training
        from .model._io import check_target

        check_target(out, overwrite=True)
    adata = _read(args.data, backed=args.backed)
    model = tl.fit(adata, groupby=args.groupby, hierarchy=_hierarchy(args.hierarchy, adata), layer=args.layer,
                   representation=args.representation, batch_key=args.batch_key, max_steps=args.max_steps,
                   condition_keys=args.condition_keys, sharing=args.sharing, n_comps=args.n_comps,
                   random_state=args.seed, progress=False if args.no_progress else None,
                   model_kwargs={"use_raw": args.use_raw, "branched": not args.flat, "n_top_genes": args.n_top_genes},
                   train_kwargs={"accelerator": args.accelerator, "devices": args.devices, "strategy": args.strategy})
    model.save(out, overwrite=args.overwrite)
    from . import pl

    pl.hierarchy(adata, save=out / "hierarchy.png")  # diagnostics beside the model
    if "separation" in adata.uns["scbranch"]:
        pl.branch_points(adata, save=out / "branch_points.png")
    logg.info(f"saved the model and its diagnostics (hierarchy.png, branch_points.png) to {out}/ "
              f"(hierarchy: {model.hierarchy.to_newick()})")
    return 0


def _read(path: Path, *, backed: bool = False):
    """An .h5ad file, or one line saying why not (anything h5py cannot open is not an .h5ad)."""
    import anndata as ad

    if not Path(path).is_file():
        msg = f"no such file: {path}"
        raise FileNotFoundError(msg)
    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except OSError as err:  # h5py: "Unable to open file (file signature not found)" and its traceback
        msg = f"{path} is not an .h5ad (HDF5) file ({str(err).splitlines()[0][:120]})"
        raise ValueError(msg) from None


def _top_genes(value: str):
    """``--n-top-genes``: 'auto', 'all' or a whole number."""
    if value in ("auto", "all"):
        return value
    try:
        return int(value)
    except ValueError:
        msg = f"expected 'auto', 'all' or a whole number, got {value!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _hierarchy(value: str | None, adata):
    """``--hierarchy``: 'data', 'cl', a Newick string or file, an ontology file, or comma-separated obs columns
    (annotation levels, coarse to fine)."""
    if value and "(" not in value and "," in value:
        columns = [c.strip() for c in value.split(",")]
        if all(c in adata.obs.columns for c in columns):
            return columns
    return value


def _generate(args) -> int:
    from . import tl
    from .model import BranchedDiffusion

    model = BranchedDiffusion.load(args.model)
    n_cells = args.n
    if args.types:
        n_cells = dict.fromkeys(args.types, args.n)
    syn = tl.generate(model, n_cells, sampler=args.sampler, n_steps=args.n_steps, random_state=args.seed,
                      transform_batch=args.transform_batch, progress=False if args.no_progress else None,
                      device=args.device)
    syn.write_h5ad(args.out)
    logg.info(f"wrote {syn.n_obs} synthetic cells to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scbranch", description="Hierarchically branched diffusion for single cells.")
    parser.add_argument("--quiet", action="store_true",
                        help="only warnings and errors: no step-by-step log, no progress bars")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train on pbmc68k_reduced (ships with scanpy), generate every type, "
                                    "write an .h5ad and a PNG, print a per-type quality table")
    p.add_argument("--out", type=Path, default=Path("scbranch_demo_out"), help="output folder (default: %(default)s)")
    p.add_argument("--n-per-type", type=int, default=200, help="synthetic cells per type (default: %(default)s)")
    p.add_argument("--max-steps", type=int, default=None, help="training steps (default: chosen by data size)")
    p.add_argument("--seed", type=int, default=0, help="random_state for everything (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")

    f = sub.add_parser("fit", help="train a model on an .h5ad file and save it to a folder")
    f.add_argument("data", type=Path, help="input .h5ad (counts or log-normalized expression)")
    f.add_argument("--groupby", default=None,
                   help="obs column with the cell type labels (default: the first usual label column, e.g. "
                        "cell_type, named in a warning)")
    f.add_argument("--out", type=Path, required=True, help="folder to save the model in")
    f.add_argument("--hierarchy", default=None,
                   help="'data' (default), 'cl' (Cell Ontology + data times), a Newick string or file, an ontology "
                        "file (.obo, .owl, .json), or obs columns coarse to fine, comma-separated "
                        "(e.g. compartment,lineage)")
    f.add_argument("--sharing", type=float, default=0.5,
                   help="how much of the reverse trajectory types share, 0 to 1 (default: %(default)s)")
    f.add_argument("--condition-keys", nargs="+", default=None, metavar="KEY",
                   help="categorical obs columns (donor, batch, condition) to condition the model on")
    f.add_argument("--n-comps", type=int, default=None,
                   help="model-space dimensions (PCs, or scVI's latent; default: by data size)")
    f.add_argument("--n-top-genes", type=_top_genes, default="auto", metavar="N",
                   help="fit the model space on N highly variable genes ('auto': every gene up to 5,000, else "
                        "3,000; 'all': every gene); counts are decoded for every gene (default: %(default)s)")
    f.add_argument("--layer", default=None, help="read expression from this layer instead of .X")
    f.add_argument("--use-raw", action="store_true", help="read expression from .raw")
    f.add_argument("--representation", choices=["pca", "scvi"], default="pca",
                   help="model space: PCA of log-normalized expression, or scVI's latent space with synthetic "
                        "counts decoded by scVI (needs raw counts) (default: %(default)s)")
    f.add_argument(
        "--batch-key", default=None, help="obs column of batches, passed to scVI (with --representation scvi)"
    )
    f.add_argument("--backed", action="store_true",
                   help="read the .h5ad backed (on disk) and work in row chunks: for data larger than memory")
    f.add_argument("--accelerator", default="auto", help="lightning accelerator: auto, cpu, gpu (default: %(default)s)")
    f.add_argument("--devices", default="auto", help="lightning devices, e.g. 1 or 4 (default: %(default)s)")
    f.add_argument("--strategy", default="auto", help="lightning strategy, e.g. ddp (default: %(default)s)")
    f.add_argument("--max-steps", type=int, default=None, help="training steps (default: chosen by data size)")
    f.add_argument("--flat", action="store_true", help="fit the flat label-conditional baseline instead")
    f.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    f.add_argument("--seed", type=int, default=0, help="random_state (default: %(default)s)")
    f.add_argument("--no-progress", action="store_true", help="hide progress bars")

    g = sub.add_parser("generate", help="generate synthetic cells from a saved model into an .h5ad file")
    g.add_argument("model", type=Path, help="folder written by 'scbranch fit'")
    g.add_argument("--n", type=int, default=100, help="cells per type (default: %(default)s)")
    g.add_argument("--types", nargs="+", default=None, help="only these types (default: all)")
    g.add_argument("--out", type=Path, required=True, help="output .h5ad")
    g.add_argument("--sampler", default="euler_maruyama",  # checked against scbranch.sampling.SAMPLERS on use
                   help="reverse-diffusion sampler: euler_maruyama, ddim, dpm_solver_2, heun, pc or one registered "
                        "with scbranch.sampling.register_sampler (default: %(default)s)")
    g.add_argument("--n-steps", type=int, default=None, help="sampler steps (default: per sampler)")
    g.add_argument("--transform-batch", default=None,
                   help="scVI models with a batch key: decode every cell in this batch (default: the type's batches)")
    g.add_argument("--device", default="auto",
                   help="where the networks run: auto (a CUDA GPU when torch finds one), cpu, cuda "
                        "(default: %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="random_state (default: %(default)s)")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    for sp in (p, f, g):  # --quiet also after the sub-command (scbranch fit data.h5ad --quiet)
        sp.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="only warnings and errors: no step-by-step log, no progress bars")
    args = parser.parse_args(argv)
    args.no_progress = args.no_progress or args.quiet
    import scanpy as sc

    before = sc.settings.verbosity
    sc.settings.verbosity = 1 if args.quiet else 2  # a command line shows its steps; a notebook stays quiet
    try:
        if args.command == "demo":
            res = demo(args.out, n_per_type=args.n_per_type, max_steps=args.max_steps, random_state=args.seed,
                       progress=False if args.no_progress else None)
            return 0 if res["n_ok"] > 0 else 1
        return _fit(args) if args.command == "fit" else _generate(args)
    except (ValueError, KeyError, TypeError, FileExistsError, FileNotFoundError) as err:
        # a user's mistake: one clear line, no traceback (KeyError's str() adds quotes: take its argument)
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"scbranch {args.command}: error: {msg}", file=sys.stderr)
        return 2
    finally:
        sc.settings.verbosity = before


if __name__ == "__main__":
    raise SystemExit(main())
