"""The training loop: AdamW + one-cycle LR, EMA weights, early stopping on a fixed-noise validation loss.

Budgeted in optimizer *steps*, not epochs: a 700-cell dataset needs thousands of steps to train a diffusion
model but has only 3 minibatches per epoch. Validation uses fixed (t, ε) draws — common random numbers — so
successive checks differ by the model, not by the noise, and early stopping compares like with like.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import _logging as logg
from ..module import T_EPS, BranchedDiffusionModule


def stratified_split(codes: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean validation mask with ``floor(fraction * n_k)`` cells of each type (tiny types stay in training)."""
    mask = np.zeros(len(codes), dtype=bool)
    for k in np.unique(codes):
        idx = np.flatnonzero(codes == k)
        n_val = int(np.floor(fraction * len(idx)))
        if n_val:
            mask[rng.choice(idx, size=n_val, replace=False)] = True
    return mask


def train_module(
    module: BranchedDiffusionModule,
    x: np.ndarray,
    codes: np.ndarray,
    *,
    max_steps: int,
    batch_size: int = 256,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    ema_decay: float = 0.999,
    balance: float = 0.5,
    val_fraction: float = 0.1,
    check_every: int = 250,
    patience: int = 8,
    random_state: int = 0,
    progress: bool = True,
    params=None,
) -> dict:
    """Train ``module`` in place (its weights end as the best EMA weights); return the loss history.

    ``balance`` tempers class imbalance: a cell of a type with n_k cells is drawn with weight n_k**-balance
    (0: natural frequencies, 1: every type equally often), so rare types' own branches see enough steps.
    ``params`` restricts the trainable parameters (used to train only some branches).
    """
    rng = np.random.default_rng(random_state)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    val_mask = stratified_split(codes, val_fraction, rng) if val_fraction > 0 else np.zeros(len(codes), bool)
    x_tr, y_tr = torch.as_tensor(x[~val_mask]), torch.as_tensor(codes[~val_mask], dtype=torch.long)
    counts = np.bincount(codes[~val_mask])
    weights = torch.as_tensor(counts[codes[~val_mask]].astype(np.float64) ** -balance)

    has_val = bool(val_mask.any())
    if has_val:
        reps = max(1, 2048 // int(val_mask.sum()))  # several fixed noise draws per validation cell
        x_val = torch.as_tensor(x[val_mask]).repeat(reps, 1)
        y_val = torch.as_tensor(codes[val_mask], dtype=torch.long).repeat(reps)
        t_val = torch.rand(len(y_val), generator=gen) * (1 - T_EPS) + T_EPS
        noise_val = torch.randn(x_val.shape, generator=gen)

    params = list(module.parameters()) if params is None else list(params)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max_steps, pct_start=0.1)
    ema = copy.deepcopy(module).requires_grad_(False)
    n_branches = module.net.n_branches
    hist = {"step": [], "train_loss": [], "val_loss": [], "branch_loss": []}
    best, best_state, bad_checks = np.inf, None, 0
    run_loss, run_n = 0.0, 0
    branch_sum, branch_n = torch.zeros(n_branches), torch.zeros(n_branches)

    module.train()
    pbar = tqdm(range(1, max_steps + 1), desc="training", unit="step", disable=not progress, leave=False)
    for step in pbar:
        idx = torch.multinomial(weights, batch_size, replacement=True, generator=gen)
        loss_rows, branch = module.loss(x_tr[idx], y_tr[idx], generator=gen)
        loss = loss_rows.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        decay = min(ema_decay, (1 + step) / (10 + step))  # warm-up: early EMA follows the weights closely
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), module.parameters()):
                p_ema.lerp_(p, 1 - decay)
        run_loss, run_n = run_loss + loss.item(), run_n + 1
        branch_sum.index_add_(0, branch, loss_rows.detach())
        branch_n.index_add_(0, branch, torch.ones_like(loss_rows))

        if step % check_every == 0 or step == max_steps:
            val = np.nan
            if has_val:
                with torch.no_grad():
                    val = float(ema.loss(x_val, y_val, t=t_val, noise=noise_val)[0].mean())
            hist["step"].append(step)
            hist["train_loss"].append(run_loss / run_n)
            hist["val_loss"].append(val)
            hist["branch_loss"].append((branch_sum / branch_n.clamp_min(1)).numpy().copy())
            pbar.set_postfix(loss=f"{run_loss / run_n:.4f}", val=f"{val:.4f}")
            run_loss, run_n = 0.0, 0
            branch_sum.zero_(), branch_n.zero_()
            score = val if has_val else hist["train_loss"][-1]
            if score < best * (1 - 1e-3):
                best, bad_checks = score, 0
                best_state = copy.deepcopy(ema.state_dict())
            else:
                bad_checks += 1
                if bad_checks >= patience:
                    logg.info(f"    early stopping at step {step}: no validation improvement in {patience} checks")
                    break
    pbar.close()
    module.load_state_dict(best_state if best_state is not None else ema.state_dict())
    module.eval()
    hist = {k: np.asarray(v) for k, v in hist.items()}
    hist["best_val_loss"] = float(best)
    hist["n_steps"] = int(hist["step"][-1])
    return hist
