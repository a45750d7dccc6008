"""AnnData ↔ model space. The default is PCA on log-normalized expression, standardized as a whole.

All components are divided by *one* common scale, so that the average component has unit variance: the
scale the VP SDE's prior N(0, I) assumes. Standardizing each component on its own (the first idea in the
design) was measured to be wrong here: it inflates the low-variance, mostly-noise PCs to the size of the main
axes and flattens the hierarchy — on cells simulated from a known tree, cousins ended up as close as siblings
(distance ratio 1.0 instead of 2.3) and the tree could not be recovered. Synthetic cells are mapped back
to cells by a count decoder (:mod:`._nb_decoder`) whenever the input holds counts (raw, or recoverable from
log-normalized values), else through the loadings with per-type residuals and a hurdle (:mod:`._residual_decoder`).

Counts are decoded *given the coordinates* (:mod:`._conditioned`): a real cell's PCs already hold its sampling
noise, so an unconstrained count draw around the decoder's mean adds that noise a second time along the same
axes; the counts are drawn conditioned on projecting back onto the cell's coordinates instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse

from .._chunks import KeptPasses
from . import _hvg
from ._conditioned import sample_given_projection
from ._library import Libraries
from ._nb_decoder import NBDecoder
from ._protocol import Decoded, DecoderData
from ._registry import register_representation
from ._residual_decoder import ResidualDecoder
from ._svd import blockwise_pca

# n_top_genes="auto": every gene up to AUTO_MAX_GENES (all of this project's benchmark sets, up to zeisel's 4,000,
# keep the model they always had), else the AUTO_TOP_GENES most variable. Above, the count decoder's network costs
# time in proportion to its genes (3,000 steps of a 512 → 20,000 output took ~1,100 s on 2 cores); 3,000 HVGs is
# within the 2,000–4,000 range scanpy's and scvi-tools' tutorials use. On zeisel (seed 0), 2,000 of its 4,000 genes
# scored as all of them did: held-out per-type MMD / kNN AUC of the decoder floor 0.019 / 0.570 vs 0.022 / 0.580,
# of generated cells 0.030 / 0.640 vs 0.032 / 0.644 (docs/benchmarks.md, "Whole transcriptomes").
AUTO_MAX_GENES, AUTO_TOP_GENES = 5000, 3000


def n_model_genes(n_top_genes, n_genes: int) -> int | None:
    """How many genes the model space is fitted on for the option ``n_top_genes``; ``None``: all of them."""
    if n_top_genes is None or n_top_genes == "all" or (not isinstance(n_top_genes, str) and n_top_genes == 0):
        return None
    if n_top_genes == "auto":
        return AUTO_TOP_GENES if n_genes > AUTO_MAX_GENES else None
    return int(n_top_genes) if n_top_genes < n_genes else None

@dataclass(frozen=True)
class PCAOptions:
    """``n_comps`` standardized PCs (default 15 below 2,000 training cells, 30 above: on pbmc68k_reduced, 700
    cells, 30 PCs gave over-dispersed samples, 15 stayed close; see ``tl.fit``)."""

    n_comps: int | None = None
    n_top_genes: int | str | None = "auto"  # see n_model_genes and tl.fit


@register_representation
class PCARepresentation:
    kind = "pca"
    input = "lognorm"  # what :meth:`fit`/:meth:`transform` read (the scVI representation reads counts)
    uses_batch = False
    Options = PCAOptions

    def __init__(self, n_comps: int = 30, n_top_genes: int | str | None = "auto"):
        self.n_comps = n_comps
        self.n_top_genes = n_top_genes  # see n_model_genes
        self.genes_: np.ndarray | None = None  # the model genes' indices (highly variable); None: every gene
        self.mean_: np.ndarray | None = None
        self.components_: np.ndarray | None = None  # (n_comps, n_genes)
        self.scale_: np.ndarray | None = None  # per-PC divisor (one common value: RMS std of the PCs)
        self.counts_decoder: NBDecoder | None = None  # with counts in the input
        self.libraries: Libraries | None = None
        self.residual_decoder: ResidualDecoder | None = None  # without

    @classmethod
    def from_options(cls, options: PCAOptions, *, n_cells: int, progress: bool | None = None) -> PCARepresentation:
        return cls(options.n_comps or (15 if n_cells < 2000 else 30), n_top_genes=options.n_top_genes)

    def genes(self, var_names):
        return var_names

    @property
    def n_features(self) -> int:
        return self.n_comps

    def fit(self, X, *, var_names=None, batch=None, random_state: int = 0) -> PCARepresentation:
        """PCA of log-normalized ``X`` (dense or sparse, held whole): :meth:`fit_blocks` with one block."""
        return self.fit_blocks([X], random_state=random_state)

    def fit_blocks(self, blocks, *, random_state: int = 0, hvg_blocks=None, hvg_kind: str = "lognorm"
                   ) -> PCARepresentation:
        """PCA of the matrix whose row blocks ``blocks`` (re-iterable: read once per power iteration) yields,
        centred implicitly so sparse blocks stay sparse (:func:`~._svd.blockwise_pca`). In memory and backed
        alike; the first block tells the number of genes. With many genes (see ``n_top_genes``) only the highly
        variable ones, selected on ``hvg_blocks`` (the same cells as they are in the input: ``hvg_kind``
        "counts" or "lognorm"; default ``blocks``): loadings are zero on the other genes, so every cell is still
        projected from its whole row."""
        n_genes = getattr(blocks, "n_genes", None) or next(iter(blocks)).shape[1]
        n_model = n_model_genes(self.n_top_genes, n_genes)
        self.genes_ = None if n_model is None else _hvg.select(
            blocks if hvg_blocks is None else hvg_blocks, n_genes, n_model, hvg_kind)
        genes = self._genes(n_genes)
        fit_on = blocks if self.genes_ is None else _Columns(blocks, genes)
        mean, comps, sv, n = blockwise_pca(fit_on, len(genes), self.n_comps, random_state=random_state)
        self.n_comps = len(comps)  # at most cells − 1 and genes
        # every gene's mean, the others' too (one more pass): inverse_transform (imputation, the residual decoder)
        # puts a gene outside the model space at its mean; the projection's centring, μCᵀ, is the same either way
        self.mean_ = _column_mean(blocks, n_genes) if self.genes_ is not None else mean.astype(np.float32)
        self.mean_[genes] = mean
        self.components_ = np.zeros((self.n_comps, n_genes), np.float32)
        self.components_[:, genes] = comps
        # the scores' variance over the fitted cells (ddof 0, as scores.var(0) before) is s² / n
        common = float(np.sqrt(np.mean(sv**2 / n))) or 1.0
        self.scale_ = np.full(self.n_comps, common, dtype=np.float32)
        return self

    def transform(self, X, *, batch=None) -> np.ndarray:
        """Model-space cells of log-normalized ``X``; sparse ``X`` is projected as it is (the centring is a
        shift of the scores, ``(X − μ)Cᵀ = XCᵀ − μCᵀ``), never densified."""
        scores = X @ self.components_.T if sparse.issparse(X) else np.asarray(X, np.float32) @ self.components_.T
        return ((np.asarray(scores) - self.mean_ @ self.components_.T) / self.scale_).astype(np.float32)

    def inverse_transform(self, Z: np.ndarray, *, clip: bool = True) -> np.ndarray:
        X = ((Z * self.scale_) @ self.components_ + self.mean_).astype(np.float32)
        return np.clip(X, 0.0, None) if clip else X

    def linear_view(self) -> tuple[np.ndarray, np.ndarray]:
        return self.scale_[:, None] * self.components_, self.mean_

    # ---- decoding -------------------------------------------------------------------------------------------
    def _genes(self, n_genes: int) -> np.ndarray:
        return np.arange(n_genes) if self.genes_ is None else self.genes_

    @property
    def makes_counts(self) -> bool:
        return self.counts_decoder is not None

    def fit_decoder(self, data: DecoderData, *, random_state: int = 0) -> None:
        """Count decoder + libraries when ``data.counts`` is given (the first fit decides), else the residual
        decoder. Types seen before are refitted (residual decoder) or kept (count decoder's network)."""
        x = data.x  # sparse stays sparse: the count decoder reads only data.counts, the residual one a type at a time
        labels = np.asarray(data.labels, dtype=str)
        z = data.z if data.z is not None else self.transform(x)
        if self.counts_decoder is None and self.residual_decoder is None and data.counts is not None:
            self.counts_decoder = NBDecoder(self.n_features, x.shape[1], self.genes_).fit(
                z, data.counts.counts, labels, random_state=random_state)
            self.libraries = Libraries(data.counts.target_sum)
        elif self.counts_decoder is not None:
            if data.counts is None:
                msg = "this model decodes counts; the new cells must hold counts too (raw or recoverable)"
                raise ValueError(msg)
            self.counts_decoder.add_types(z, data.counts.counts, labels, random_state=random_state)
        else:
            self.residual_decoder = self.residual_decoder or ResidualDecoder(x.shape[1])
            self.residual_decoder.fit(x, self.inverse_transform(z, clip=False), labels,
                                      random_state=random_state)
            return
        self.libraries.fit(data.counts.counts, labels, data.counts.scale, z=z, target_sum=data.counts.target_sum,
                           random_state=random_state)

    def decode(self, z: np.ndarray, labels, *, random_state: int | None = 0, transform_batch=None) -> Decoded:
        """Cells for model-space ``z``: counts and their log-normalization, or (no counts) decoded log-expression.
        ``random_state=None`` (residual decoder only): the noise-free decoding, for plots."""
        if transform_batch is not None:
            msg = "transform_batch= needs representation='scvi' with a batch_key"
            raise ValueError(msg)
        rng = np.random.default_rng(random_state) if random_state is not None else None
        if self.counts_decoder is None:
            x = self.residual_decoder.decode(self.inverse_transform(z, clip=False), labels, rng)
            return Decoded(sparse.csr_matrix(x))
        rng = rng or np.random.default_rng(0)
        labels = np.asarray(labels, dtype=str)
        X, counts = self.libraries.sample(
            labels, lambda rows, lib, factors: self._draw_given(z[rows], labels[rows], lib, factors, rng), rng, z,
            n_genes=len(self.mean_))
        return Decoded(X, counts)

    def _draw_given(self, z, labels, lib, factors, rng) -> np.ndarray:
        """Counts for cells at model-space ``z`` that project back onto ``z`` (see :mod:`._conditioned`)."""
        mu, theta = self.counts_decoder.params(z, labels, lib)
        loadings = (self.components_.T / self.scale_).astype(np.float64)
        offset = (self.mean_ @ self.components_.T / self.scale_).astype(np.float64)
        return sample_given_projection(mu, theta, np.asarray(z, np.float64), loadings, offset, factors, rng)

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {"mean": torch.from_numpy(self.mean_), "components": torch.from_numpy(self.components_),
               "scale": torch.from_numpy(self.scale_)}
        if self.genes_ is not None:  # absent from older saved models and from models over every gene
            out["genes"] = torch.from_numpy(self.genes_.astype(np.int64))
        for name, part in self._decoders():
            out.update({f"{name}/{k}": v for k, v in part.state_dict().items()})
        return out

    def _decoders(self):
        return [(n, p) for n, p in (("counts_decoder", self.counts_decoder), ("libraries", self.libraries),
                                    ("residual_decoder", self.residual_decoder)) if p is not None]

    def meta(self) -> dict:
        return {name: part.meta() for name, part in self._decoders()}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], *, meta=None) -> PCARepresentation:
        rep = cls(int(state["components"].shape[0]))
        rep.mean_ = state["mean"].numpy()
        rep.components_ = state["components"].numpy()
        rep.scale_ = state["scale"].numpy()
        if "genes" in state:
            genes, n_genes = state["genes"].numpy(), rep.components_.shape[1]
            if genes.ndim != 1 or not len(genes) or np.any(np.diff(genes) <= 0) or genes[0] < 0 \
                    or genes[-1] >= n_genes:
                msg = f"the representation's model genes are not distinct sorted indices of its {n_genes} genes"
                raise ValueError(msg)
            rep.genes_ = genes.copy()
        for name, cls_ in (("counts_decoder", NBDecoder), ("libraries", Libraries),
                           ("residual_decoder", ResidualDecoder)):
            if name in (meta or {}):
                part = {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith(f"{name}/")}
                setattr(rep, name, cls_.from_state(part, meta[name]))
        return rep


class _Columns(KeptPasses):
    """Columns ``cols`` of the row blocks another re-iterable yields, sliced as they pass. When the source keeps
    its blocks in memory (:class:`~scbranch._chunks.LognormBlocks` of in-memory input) the slices are kept too:
    a CSR column selection costs 0.1 s a 10,000-cell block at 20,000 genes, and the PCA reads the blocks 17 times."""

    def __init__(self, blocks, cols: np.ndarray):
        self.source, self.cols, self.n_genes = blocks, cols, len(cols)
        self.keep = getattr(blocks, "keep", False)

    def blocks(self):
        for b in self.source:
            yield b[:, self.cols]


def _column_mean(blocks, n_genes: int) -> np.ndarray:
    n, total = 0, np.zeros(n_genes)
    for b in blocks:
        n += b.shape[0]
        total += np.asarray(b.sum(0), dtype=np.float64).ravel()
    return (total / max(n, 1)).astype(np.float32)
