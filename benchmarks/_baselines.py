"""Baselines for the benchmarks: a per-type Gaussian, and scANVI's label-conditional prior as a generator."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import torch


def gaussian_per_type(z: np.ndarray, labels, n_per_type: int, random_state: int = 0):
    """Sample a full-covariance Gaussian fitted to each type's cells (in whatever space ``z`` is)."""
    rng = np.random.default_rng(random_state)
    labels = np.asarray(labels, str)
    out, lab = [], []
    for t in pd.unique(labels):
        zt = z[labels == t]
        cov = np.cov(zt, rowvar=False) + 1e-4 * np.eye(z.shape[1]) if len(zt) > 1 else 1e-4 * np.eye(z.shape[1])
        out.append(rng.multivariate_normal(zt.mean(0), cov, size=n_per_type))
        lab += [t] * n_per_type
    return np.vstack(out), np.asarray(lab)


def scanvi_prior_sample(counts: ad.AnnData, groupby: str, n_per_type: int | dict, *, max_epochs: int = 200,
                        random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train scVI → scANVI on ``counts.X`` (integers), then sample from scANVI's label-conditional prior:
    z2 ~ N(0, I), z1 ~ p(z1 | z2, y) (its decoder_z1_z2), library sizes drawn from the type's observed ones,
    counts ~ p(x | z1, library) (its (ZI)NB likelihood). scvi-tools has no such sampler; this is it.
    ``n_per_type``: one number for every type or ``{type: n}``. Returns (sampled counts, labels)."""
    import scvi

    scvi.settings.seed = random_state
    adata = counts.copy()
    scvi.model.SCVI.setup_anndata(adata, labels_key=groupby)
    vae = scvi.model.SCVI(adata)
    vae.train(max_epochs=max_epochs, enable_progress_bar=False)
    lvae = scvi.model.SCANVI.from_scvi_model(vae, unlabeled_category="__unlabeled__")
    lvae.train(max_epochs=max(20, max_epochs // 10), enable_progress_bar=False)
    module = lvae.module.eval()
    mapping = lvae.adata_manager.get_state_registry(scvi.REGISTRY_KEYS.LABELS_KEY).categorical_mapping
    gen = torch.Generator().manual_seed(random_state)
    lib = np.asarray(adata.X.sum(1)).ravel()
    labels = adata.obs[groupby].astype(str).to_numpy()
    out, lab = [], []
    with torch.no_grad():
        for code, t in enumerate(mapping):
            n = n_per_type.get(t, 0) if isinstance(n_per_type, dict) else n_per_type
            if t not in set(labels) or n == 0:
                continue
            y = torch.full((n, 1), code, dtype=torch.long)
            z2 = torch.randn((n, module.n_latent), generator=gen)
            m, v = module.decoder_z1_z2(z2, y)
            z1 = m + v.sqrt() * torch.randn(m.shape, generator=gen)
            obs_lib = lib[labels == t]
            pick = torch.as_tensor(obs_lib[torch.randint(len(obs_lib), (n,), generator=gen).numpy()])
            gen_out = module.generative(z=z1, library=pick.log()[:, None].float(),
                                        batch_index=torch.zeros((n, 1), dtype=torch.long), y=y)
            out.append(gen_out["px"].sample().numpy())
            lab += [t] * n
    return np.vstack(out), np.asarray(lab)
