# %% [markdown]
# # Adding a cell type, and transmuting cells between types
#
# Train without NK cells, then add them: the model places NK at its branch point against cells it generates
# for the other types (it does not need the old training data) and trains only what must change. With
# `mode="heads"` the other types are untouched, bit for bit. Then transmute monocytes into dendritic cells
# through their shared branch point. Set `SCBRANCH_TUTORIAL_STEPS` to train briefly (the tests do).

# %%
import os

import numpy as np

import scbranch as sb

steps = int(os.environ.get("SCBRANCH_TUTORIAL_STEPS", "0")) or None
adata = sb.datasets.pbmc68k()
is_nk = (adata.obs["bulk_labels"] == "CD56+ NK").to_numpy()
old, nk = adata[~is_nk].copy(), adata[is_nk].copy()
model = sb.tl.fit(old, groupby="bulk_labels", max_steps=steps)
before = sb.tl.generate(model, {"CD19+ B": 50}, random_state=1)

# %%
sb.tl.add_cell_type(nk, model, mode="heads", max_steps=steps)
print(nk.uns["scbranch"]["continual"]["placements"])
after = sb.tl.generate(model, {"CD19+ B": 50}, random_state=1)
print("B cells unchanged after adding NK:", np.array_equal(before.X.toarray(), after.X.toarray()))

# %%
syn = sb.tl.generate(model, 100)
sb.metrics.centroid_table(model.get_latent(adata), adata.obs["bulk_labels"], syn.obsm["X_scbranch"],
                          syn.obs["bulk_labels"]).loc[["CD56+ NK"]]

# %%
transmuted = sb.tl.transmute(adata, model, source="CD14+ Monocyte", target="Dendritic")
print(transmuted.uns["scbranch"]["transmute"])
sb.pl.transmutation(adata, transmuted, model, save="_monocyte_to_dendritic.png")
