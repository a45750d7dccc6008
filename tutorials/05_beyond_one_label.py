# %% [markdown]
# # Beyond one label: annotation levels, cells of an internal node, cells completed from a partial panel
#
# Atlases annotate at several levels (compartment, lineage, cell type). scbranch builds its hierarchy from
# nested `.obs` columns, places the branch points in diffusion time from the data, and can then generate the
# cells of any internal node of the tree (`{"lymphoid": 500}`), its types in their training proportions, in
# one tree walk. Any ontology file works like the Cell Ontology (`hierarchy="my_ontology.obo"`).
# Set `SCBRANCH_TUTORIAL_STEPS` to train briefly (the tests do).

# %%
import os
from pathlib import Path

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import scbranch as sb

steps = int(os.environ.get("SCBRANCH_TUTORIAL_STEPS", "0")) or None
adata = sb.datasets.pbmc68k()
lineage = {"CD14+ Monocyte": "myeloid", "Dendritic": "myeloid", "CD34+": "progenitor", "CD19+ B": "B",
           "CD56+ NK": "NK", "CD4+/CD25 T Reg": "T", "CD8+ Cytotoxic T": "T", "CD8+/CD45RA+ Naive Cytotoxic": "T",
           "CD4+/CD45RO+ Memory": "T", "CD4+/CD45RA+/CD25- Naive T": "T"}
compartment = {"myeloid": "myeloid", "progenitor": "progenitor", "B": "lymphoid", "NK": "lymphoid", "T": "lymphoid"}
adata.obs["lineage"] = adata.obs["bulk_labels"].astype(str).map(lineage).astype("category")
adata.obs["compartment"] = adata.obs["lineage"].astype(str).map(compartment).astype("category")

# %% [markdown]
# ## A hierarchy from annotation levels
# Coarse to fine; `groupby` is the finest level. A fine label under two coarse ones would be an error naming
# it. Nodes with one child collapse (CD34+ is the only progenitor type, so no "progenitor" branch point).

# %%
model = sb.tl.fit(adata, groupby="bulk_labels", hierarchy=["compartment", "lineage"], max_steps=steps)
print(model.hierarchy)
sb.pl.hierarchy(adata, save="_levels.png")

# %% [markdown]
# ## Cells of an internal node
# `{"lymphoid": 600}`: the lymphoid types in their training proportions (a multinomial draw), generated in one
# walk that shares the lymphoid branch; `.obs["bulk_labels"]` holds each cell's type and
# `.obs["scbranch_node"]` the node asked for. `proportions=` sets other weights.

# %%
syn = sb.tl.generate(model, {"lymphoid": 600, "myeloid": 200}, random_state=0)
below = model.hierarchy.node("lymphoid").leaves()
train = adata.obs["bulk_labels"].astype(str).value_counts()[below]
table = pd.DataFrame({"training share": train / train.sum(),
                      "generated share": syn.obs.loc[syn.obs["scbranch_node"] == "lymphoid", "bulk_labels"]
                      .astype(str).value_counts().reindex(below, fill_value=0) / 600})
print(table.round(3))
ax = table.plot.barh(figsize=(6, 3.5))
ax.set_xlabel("share of the lymphoid node's cells")
Path("figures").mkdir(exist_ok=True)
plt.tight_layout()
plt.savefig("figures/node_composition.png", dpi=120)
only_t = sb.tl.generate(model, {"lymphoid": 100}, proportions={t: 1 for t in below if "T" in t}, random_state=1)
print("T types only:", sorted(set(only_t.obs["bulk_labels"])))
print("evaluations for all 800 cells:", syn.uns["scbranch"]["generate"]["n_evals"],
      f"({np.round(syn.uns['scbranch']['generate']['n_evals'] / 800, 1)} per cell)")

# %% [markdown]
# ## Completing cells from a partial panel
# Cells measured on some genes only (a targeted panel, or masked genes) are completed by posterior sampling:
# the reverse process runs down each cell's type's branches, pulled toward the measured genes. Here 80 % of
# the genes of 100 cells are hidden; without `groupby=` the types are inferred from what was measured.

# %%
x = model.get_lognorm(adata)
rng = np.random.default_rng(0)
cells = rng.choice(adata.n_obs, 100, replace=False)
shown = np.sort(rng.choice(x.shape[1], x.shape[1] // 5, replace=False))
panel = ad.AnnData(x[np.ix_(cells, shown)], obs=adata.obs.iloc[cells][["bulk_labels"]])
panel.var_names = model.var_names[shown]
full = sb.tl.impute(panel, model, n_samples=4)
hidden = ~full.var["scbranch_measured"].to_numpy()
r = [np.corrcoef(full.X[:, g], x[cells][:, g])[0, 1] for g in np.flatnonzero(hidden) if x[cells][:, g].std() > 0]
print(f"per-gene r on the hidden genes: {np.nanmean(r):.2f}; inferred types correct: "
      f"{(full.obs['bulk_labels'].astype(str).values == panel.obs['bulk_labels'].astype(str).values).mean():.0%}")

# %% [markdown]
# ## Conditioning on a covariate
# `condition_keys=["phase"]` conditions every branch's score on the cell-cycle phase as well (left out of 15 %
# of training rows, so it can be left out at generation: `condition=None` marginalizes). Cells generated in
# G2M vs G1 should differ in the genes real G2M and G1 cells differ in. `sb.tl.transfer` maps real cells to
# another phase through a shared noise level (a counterfactual, like transmutation across a covariate).

# %%
cc = sb.tl.fit(adata, groupby="bulk_labels", condition_keys=["phase"], max_steps=steps)
g1 = sb.tl.generate(cc, 100, condition={"phase": "G1"}, random_state=0)
g2m = sb.tl.generate(cc, 100, condition={"phase": "G2M"}, random_state=0)
x_all = cc.get_lognorm(adata)
phase = adata.obs["phase"].astype(str).to_numpy()
real_diff = x_all[phase == "G2M"].mean(0) - x_all[phase == "G1"].mean(0)
top = np.argsort(-real_diff)[:10]
syn_diff = np.asarray(g2m.X[:, top].mean(0) - g1.X[:, top].mean(0)).ravel()
fig, ax = plt.subplots(figsize=(7, 3.5))
pos = np.arange(len(top))
ax.bar(pos - 0.2, real_diff[top], 0.4, label="real G2M − G1")
ax.bar(pos + 0.2, syn_diff, 0.4, label="synthetic G2M − G1")
ax.set_xticks(pos)
ax.set_xticklabels(cc.var_names[top], rotation=45, ha="right")
ax.set_ylabel("mean log-expression difference")
ax.legend(frameon=False)
plt.tight_layout()
plt.savefig("figures/condition_phase.png", dpi=120)
moved = sb.tl.transfer(adata[phase == "G1"], cc, condition={"phase": "G2M"}, time=0.5)
print(moved.obs[["phase", "phase_original"]].value_counts())
