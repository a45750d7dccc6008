"""Baselines for the benchmarks: a per-type Gaussian, scANVI's label-conditional prior as a generator,
and a plain label-conditional MLP diffusion model (VP SDE, epsilon prediction) as a reference peer."""

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


def _vp_alpha_sigma(t: torch.Tensor, beta_min: float = 0.1, beta_max: float = 20.0):
    """Signal and noise scales of the VP SDE with linear beta(t) on [0, 1]."""
    alpha = torch.exp(-0.5 * (beta_min * t + 0.5 * (beta_max - beta_min) * t**2))
    return alpha, torch.sqrt(1.0 - alpha**2)


class _LabelMLP(torch.nn.Module):
    """eps_hat(x, t, y): Linear(x) + time embedding + label embedding, then 4 hidden SiLU layers of 256."""

    def __init__(self, d: int, n_types: int, width: int = 256, n_freq: int = 128):
        super().__init__()
        self.x_in = torch.nn.Linear(d, width)
        self.t_in = torch.nn.Linear(2 * n_freq, width)
        self.y_in = torch.nn.Embedding(n_types, width)
        self.register_buffer("freqs", torch.exp(-np.log(10000.0) * torch.arange(n_freq) / n_freq))
        layers = []
        for _ in range(4):
            layers += [torch.nn.SiLU(), torch.nn.Linear(width, width)]
        self.hidden = torch.nn.Sequential(*layers, torch.nn.SiLU())
        self.out = torch.nn.Linear(width, d)

    def forward(self, x, t, y):
        arg = (t * 1000.0)[:, None] * self.freqs[None]
        h = self.x_in(x) + self.t_in(torch.cat([arg.sin(), arg.cos()], 1)) + self.y_in(y)
        return self.out(self.hidden(h))


def mlp_diffusion(z: np.ndarray, labels, n_per_type: int | dict, *, steps: int = 12000, n_sample_steps: int = 200,
                  random_state: int = 0, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Train a label-conditional MLP diffusion model on ``z`` (cells × d, e.g. PCs) and sample from it.
    VP SDE (beta 0.1 → 20), epsilon-prediction MSE, Adam 1e-3, batches of 256 drawn with replacement, EMA 0.999;
    Euler–Maruyama on the reverse SDE from t=1 to 1e-3. Every random draw uses a generator seeded by
    ``random_state``, so the same seed gives the same output. ``n_per_type``: one number for every type or
    ``{type: n}`` (types missing or with 0 get none). Returns (samples in z's space, labels as str array)."""
    from tqdm.auto import tqdm

    labels = np.asarray(labels, str)
    types = pd.unique(labels)
    code = {t: i for i, t in enumerate(types)}
    # One common scale for all columns keeps the relative variance of the PCs (PC1 stays the largest).
    mean = z.mean(0)
    scale = np.sqrt(z.var(0).mean())
    x = torch.as_tensor((z - mean) / scale, dtype=torch.float32)
    y = torch.as_tensor([code[t] for t in labels], dtype=torch.long)
    gen = torch.Generator().manual_seed(random_state)
    with torch.random.fork_rng():
        torch.manual_seed(random_state)
        net = _LabelMLP(x.shape[1], len(types))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    # EMA started at zero and bias-corrected at the end (as in Adam): an exact 0.999-average of the trained weights
    # without the random init leaking in, which would otherwise still weigh 0.999**1500 ≈ 22 % after 1,500 steps.
    ema = [torch.zeros_like(p) for p in net.parameters()]
    for _ in tqdm(range(steps), desc="mlp diffusion", disable=not progress, leave=False):
        idx = torch.randint(len(x), (256,), generator=gen)
        t = 1e-3 + (1 - 1e-3) * torch.rand(256, generator=gen)
        eps = torch.randn(256, x.shape[1], generator=gen)
        alpha, sigma = _vp_alpha_sigma(t)
        loss = ((net(alpha[:, None] * x[idx] + sigma[:, None] * eps, t, y[idx]) - eps) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, net.parameters()):
                e.mul_(0.999).add_(p, alpha=0.001)
    with torch.no_grad():
        for e, p in zip(ema, net.parameters()):
            p.copy_(e / (1 - 0.999**steps))
    net.eval()

    want = [(t, n_per_type.get(t, 0) if isinstance(n_per_type, dict) else n_per_type) for t in types]
    want = [(t, int(n)) for t, n in want if n > 0]
    out_lab = np.asarray([t for t, n in want for _ in range(n)], dtype=str)
    yy = torch.as_tensor([code[t] for t in out_lab], dtype=torch.long)
    xs = torch.randn(len(yy), x.shape[1], generator=gen)
    ts = torch.linspace(1.0, 1e-3, n_sample_steps + 1)
    with torch.no_grad():
        for i in range(n_sample_steps):
            t, h = ts[i], ts[i] - ts[i + 1]
            beta = 0.1 + (20.0 - 0.1) * t
            _, sigma = _vp_alpha_sigma(t)
            score = -net(xs, t.expand(len(xs)), yy) / sigma
            # Reverse-time VP SDE, stepped backwards by h: dx = [-beta/2 x - beta score] dt + sqrt(beta) dW.
            xs = xs + (0.5 * beta * xs + beta * score) * h + torch.sqrt(beta * h) * torch.randn(xs.shape, generator=gen)
    return xs.numpy() * scale + mean, out_lab
