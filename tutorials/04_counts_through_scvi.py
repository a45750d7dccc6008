# %% [markdown]
# # Synthetic counts through scVI
#
# With `representation="scvi"`, scbranch trains scVI on the raw counts, runs branched diffusion on scVI's
# latent means, and decodes synthetic cells with scVI's likelihood: library sizes drawn from the type's real
# cells nearest in latent space, counts in `layers["counts"]`. The synthetic counts then go through the usual
# scanpy pipeline (normalize_total, log1p, HVG, PCA, rank_genes_groups), and their marker genes are compared
# with the real ones. `pbmc68k_reduced` ships no raw matrix, but its `.raw` is an exact per-cell scaling of
# counts, which `scbranch.datasets.pbmc68k_counts()` undoes. Set `SCBRANCH_TUTORIAL_STEPS` to train briefly
# (the tests do).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import scanpy as sc

import scbranch as sb

steps = int(os.environ.get("SCBRANCH_TUTORIAL_STEPS", "0")) or None
adata = sb.datasets.pbmc68k_counts()
model = sb.tl.fit(adata, groupby="bulk_labels", representation="scvi", layer="counts",
                  max_steps=steps, model_kwargs={"scvi_epochs": 20 if steps else 400})
syn = sb.tl.generate(model, 60)
print(syn)

# %% [markdown]
# The usual pipeline, on the synthetic counts and on the real ones.

# %%
def pipeline(a):
    a = a.copy()
    a.X = a.layers["counts"].copy()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.highly_variable_genes(a, n_top_genes=300)
    sc.pp.pca(a, n_comps=20)
    return a


real_p, syn_p = pipeline(adata), pipeline(syn)
print("HVGs shared by real and synthetic:", (real_p.var.highly_variable & syn_p.var.highly_variable).sum(), "of 300")

# %% [markdown]
# Marker genes per type (Wilcoxon, one type vs the rest): overlap of the top 20, synthetic vs real.

# %%
markers = sb.metrics.marker_recovery(real_p, syn_p, "bulk_labels", n_top=20)
print(markers.round(2))
print("mean top-20 overlap:", round(markers["top20_overlap"].mean(), 2))

# %% [markdown]
# Both in the *real* cells' PCA (synthetic cells projected with the real loadings), one colour per type.

# %%
def dense(x):
    return np.asarray(x.todense()) if hasattr(x, "todense") else np.asarray(x)


mean, loadings = dense(real_p.X).mean(0), real_p.varm["PCs"]  # loadings are zero outside the real HVGs
coords = {"real counts": dense(real_p.X) @ loadings - mean @ loadings,
          "synthetic counts (scVI decoder)": dense(syn_p.X) @ loadings - mean @ loadings}
labels = {"real counts": real_p.obs["bulk_labels"], "synthetic counts (scVI decoder)": syn_p.obs["bulk_labels"]}
colours = dict(zip(adata.obs["bulk_labels"].cat.categories, plt.cm.tab10.colors))
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharex=True, sharey=True)
for ax, (title, z) in zip(axes, coords.items()):
    for t, c in colours.items():
        m = (labels[title] == t).to_numpy()
        ax.scatter(z[m, 0], z[m, 1], s=6, color=c, label=t)
    ax.set(title=title, xlabel="PC1 (real)", ylabel="PC2 (real)")
axes[1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5))
fig.tight_layout()
fig.savefig("counts_real_vs_synthetic_pca.png", dpi=120)
