# %% [markdown]
# # scbranch quickstart: PBMC
#
# Fit a branched diffusion model on `pbmc68k_reduced` (ships with scanpy, offline), look at where in
# diffusion time the cell types separate, generate cells of every type and compare them with the real ones.
# Set `SCBRANCH_TUTORIAL_STEPS` to train briefly (the tests do).

# %%
import os

import scanpy as sc

import scbranch as sb

steps = int(os.environ.get("SCBRANCH_TUTORIAL_STEPS", "0")) or None
adata = sb.datasets.pbmc68k()
model = sb.tl.fit(adata, groupby="bulk_labels", max_steps=steps)
model

# %% [markdown]
# Branch points: the diffusion time at which two groups of types become indistinguishable (later = more
# distinct). The root splits last in reverse time, i.e. first when generating.

# %%
adata.uns["scbranch"]["branch_points"][["node", "time", "children", "last_pair"]]

# %%
syn = sb.tl.generate(model, 200)
print(syn.uns["scbranch"]["generate"])
sb.metrics.centroid_table(adata.obsm["X_scbranch"], adata.obs["bulk_labels"],
                          syn.obsm["X_scbranch"], syn.obs["bulk_labels"])

# %%
sb.pl.synthetic_vs_real(adata, syn, groupby="bulk_labels", save="_quickstart.png")

# %% [markdown]
# Gene by gene. `pbmc68k_reduced`'s log-normalized values are a per-cell scaling of integer counts, so scbranch
# recovers the counts and decodes synthetic cells through a count model: `syn.layers["counts"]` holds integer
# counts with library sizes drawn from each type's real cells nearest in model space, and `syn.X` is normalized
# exactly as the input was (here: per-cell scales, since the input was normalized over more genes than it
# keeps). Left: each type's top markers, real and synthetic rows (dot size = fraction of cells expressing);
# right: per gene, mean expression vs fraction of cells expressing.

# %%
print(syn)
sb.pl.realism(adata, syn, groupby="bulk_labels", save="_quickstart.png")
sb.metrics.gene_level_quality(model.get_lognorm(adata), adata.obs["bulk_labels"], syn.X, syn.obs["bulk_labels"],
                              var_names=adata.var_names, groupby="bulk_labels")

# %% [markdown]
# Real and synthetic cells in one UMAP. `concat_real_synthetic` reads the real cells where the model read them
# (here `.X`, log-normalized), so both parts share one scale; `.obs["scbranch_synthetic"]` marks the origin.
# Synthetic cells should mix with the real cells of their own type, not form islands of their own.

# %%
both = sb.tl.concat_real_synthetic(adata, syn, model)
sc.pp.pca(both)
sc.pp.neighbors(both)
sc.tl.umap(both)
sc.pl.umap(both, color=["scbranch_synthetic", "bulk_labels"], save="_quickstart.png")
