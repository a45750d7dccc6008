"""AnnData ↔ model space. The default is PCA on log-normalized expression, standardized as a whole.

All components are divided by *one* common scale, so that the average component has unit variance: the
scale the VP SDE's prior N(0, I) assumes. Standardizing each component on its own (the first idea in the
design) was measured to be wrong here: it inflates the low-variance, mostly-noise PCs to the size of the main
axes and flattens the hierarchy — on cells simulated from a known tree, cousins ended up as close as siblings
(distance ratio 1.0 instead of 2.3) and the tree could not be recovered. Synthetic cells are mapped back
through the PCA loadings to log-normalized expression (clipped at 0, the floor of log1p).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA, IncrementalPCA

from .representation_scvi import SCVIRepresentation


class PCARepresentation:
    kind = "pca"
    input = "lognorm"  # what :meth:`fit`/:meth:`transform` read (the scVI representation reads counts)

    def __init__(self, n_comps: int = 30):
        self.n_comps = n_comps
        self.mean_: np.ndarray | None = None
        self.components_: np.ndarray | None = None  # (n_comps, n_genes)
        self.scale_: np.ndarray | None = None  # per-PC divisor (one common value: RMS std of the PCs)

    @property
    def n_features(self) -> int:
        return self.n_comps

    def fit(self, X: np.ndarray, *, var_names=None, batch=None, random_state: int = 0) -> PCARepresentation:
        n_comps = min(self.n_comps, X.shape[0] - 1, X.shape[1])
        if n_comps < self.n_comps:
            self.n_comps = n_comps
        pca = PCA(n_components=n_comps, svd_solver="full" if min(X.shape) < 2000 else "randomized",
                  random_state=random_state)
        scores = pca.fit_transform(X)
        self.mean_ = pca.mean_.astype(np.float32)
        self.components_ = pca.components_.astype(np.float32)
        common = float(np.sqrt(np.mean(scores.var(0)))) or 1.0
        self.scale_ = np.full(n_comps, common, dtype=np.float32)
        return self

    def fit_chunks(self, chunks, *, random_state: int = 0) -> PCARepresentation:
        """Incremental PCA over an iterable of row blocks (for backed or very large data)."""
        ipca = IncrementalPCA(n_components=self.n_comps)
        for block in chunks:
            if len(block) >= self.n_comps:  # partial_fit needs at least n_components rows
                ipca.partial_fit(block)
        self.mean_ = ipca.mean_.astype(np.float32)
        self.components_ = ipca.components_.astype(np.float32)
        common = float(np.sqrt(np.mean(ipca.explained_variance_))) or 1.0
        self.scale_ = np.full(self.n_comps, common, dtype=np.float32)
        return self

    def transform(self, X: np.ndarray, *, batch=None) -> np.ndarray:
        return (((X - self.mean_) @ self.components_.T) / self.scale_).astype(np.float32)

    def inverse_transform(self, Z: np.ndarray, *, clip: bool = True) -> np.ndarray:
        X = ((Z * self.scale_) @ self.components_ + self.mean_).astype(np.float32)
        return np.clip(X, 0.0, None) if clip else X

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "mean": torch.from_numpy(self.mean_),
            "components": torch.from_numpy(self.components_),
            "scale": torch.from_numpy(self.scale_),
        }

    def meta(self) -> dict:
        return {}

    def save_files(self, path) -> None:
        """Nothing beyond :meth:`state_dict` (the scVI representation also saves scVI itself)."""

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], *, meta=None, path=None) -> PCARepresentation:
        rep = cls(int(state["components"].shape[0]))
        rep.mean_ = state["mean"].numpy()
        rep.components_ = state["components"].numpy()
        rep.scale_ = state["scale"].numpy()
        return rep


REPRESENTATIONS = {"pca": PCARepresentation, "scvi": SCVIRepresentation}  # scvi-tools imported only when used
