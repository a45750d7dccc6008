# %% [markdown]
# # Cell Ontology hierarchy and rare-type augmentation
#
# The labels of `pbmc68k_reduced` are free text ("CD14+ Monocyte"). scbranch maps them to Cell Ontology
# terms offline (a mapping for these 10 names ships with the package), builds the CL tree joining them, and
# places each branch point in diffusion time from the data. Where the ontology and the data disagree,
# `branch_points` says so. Then we top up the rare types and check a classifier on held-out cells.
# Set `SCBRANCH_TUTORIAL_STEPS` to train briefly (the tests do).

# %%
import os

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score

import scbranch as sb

steps = int(os.environ.get("SCBRANCH_TUTORIAL_STEPS", "0")) or None
adata = sb.datasets.pbmc68k()
rng = np.random.default_rng(0)
test = rng.random(adata.n_obs) < 0.3
train, held_out = adata[~test].copy(), adata[test].copy()
model = sb.tl.fit(train, groupby="bulk_labels", hierarchy="cl", max_steps=steps)

# %%
bp = train.uns["scbranch"]["branch_points"]
bp[["node", "time", "monotone_adjusted", "conflict"]]

# %%
sb.pl.hierarchy(train, save="_cl.png")
sb.pl.branch_points(train, save="_cl.png")

# %% [markdown]
# Augment every type to at least 100 cells and compare a classifier trained on real cells only with one
# trained on real + synthetic cells, on the held-out real cells.

# %%
aug = sb.tl.augment(train, model, min_cells=100)
print(aug.obs.groupby("bulk_labels", observed=True)["scbranch_synthetic"].agg(["size", "sum"]))


def recall_of_rare(x_fit, y_fit):
    z_fit, z_test = model.representation.transform(x_fit), model.get_latent(held_out)
    pred = LogisticRegression(max_iter=2000).fit(z_fit, y_fit).predict(z_test)
    rare = ["CD4+/CD45RA+/CD25- Naive T", "CD34+", "CD4+/CD45RO+ Memory"]
    return recall_score(held_out.obs["bulk_labels"].astype(str), pred, labels=rare, average="macro", zero_division=0)


print("rare-type recall, real only:", recall_of_rare(model.get_lognorm(train), train.obs["bulk_labels"].astype(str)))
print("rare-type recall, real + synthetic:", recall_of_rare(aug.X, aug.obs["bulk_labels"].astype(str)))
