# %% [markdown]
# # scbranch quickstart: PBMC
#
# Fit a branched diffusion model on `pbmc68k_reduced` (ships with scanpy, offline), look at where in
# diffusion time the cell types separate, generate cells of every type and compare them with the real ones.
# Set `SCBRANCH_TUTORIAL_STEPS` to train briefly (the tests do).

# %%
import os

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
sb.pl.synthetic_vs_real(adata, syn, groupby="bulk_labels", save="quickstart_real_vs_synthetic.png")
