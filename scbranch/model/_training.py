"""Training on Lightning: AdamW with warm-up then a constant LR, EMA weights, and a stopping rule on a
fixed-noise validation loss.

Budgeted in optimizer *steps*, not epochs: a 700-cell dataset needs thousands of steps to train a diffusion
model but has only 3 minibatches per epoch. Minibatches are drawn with replacement, weighted against class
imbalance, from a seeded generator (per DDP rank), so a run is reproducible. Validation uses fixed (t, ε)
draws — common random numbers — so successive checks differ by the model, not by the noise, and early
stopping compares like with like. ``accelerator``, ``devices`` and ``strategy`` go to ``lightning.Trainer``
as they are: ``strategy="ddp", devices=4, num_nodes=2`` trains on 8 GPUs without code changes.

The stopping rule (:class:`StopRule`) ends training when the best validation loss improved by less than
``tol`` (relative) over the last ``window`` steps. The LR does not depend on the budget (a one-cycle schedule
tied to ``max_steps`` made every budget a different run, and a run stopped early had never annealed); the EMA
weights do the averaging. ``tol`` and ``window`` were calibrated in ``benchmarks/fit_time.py`` against held-out
quality of the EMA weights at every check (see ``TrainConfig.stop_tol``).
"""

from __future__ import annotations

import copy
import time

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from .. import _interrupt
from .. import _logging as logg
from .._progress import enabled, quiet_third_party, training_bar
from ..module import T_EPS, BranchedDiffusionModule
from ._config import TrainConfig

MAX_VAL_CELLS = 4096
# benchmarks/fit_time.py, rules replayed on 3 long runs each: stopping where the best validation loss gained
# < 0.2 % over 1,000 steps stopped pbmc68k at ~1,700 steps (held-out MMD 0.072, kNN AUC 0.591; at 6,000 steps
# 0.099 / 0.619: small data over-trains) and 10k simulated cells at ~2,800 (0.0073 / 0.587; at 10,000 steps
# 0.0067 / 0.582, TSTR equal); 0.5 % stopped the 10k set at ~2,200 with MMD 0.0079
STOP_WINDOW = 1000  # the stopping rule's longest default window (default_window)


def default_window(n_cells: int) -> int:
    """The rule's window by data size: one step per training cell within [500, STOP_WINDOW]. Small data reach
    their best held-out quality early and then over-train (pbmc68k: best at 1,000 steps), large data keep
    improving slowly (10k cells: 500-step windows stopped at ~1,500 steps, MMD 0.0080, vs 0.0073 for the rule's
    0.2 % over 1,000 steps, at ~2,800)."""
    return int(np.clip(n_cells, 500, STOP_WINDOW))
WARMUP_STEPS = 200


class StopRule:
    """Stop when the best validation loss improved by less than ``tol`` (relative) over the last ``window`` steps.

    ``update(step, loss)`` returns the reason to stop (a sentence, logged) or ``None``. Never before ``min_steps``.
    """

    def __init__(self, tol: float = TrainConfig.stop_tol, window: int = STOP_WINDOW,
                 min_steps: int = TrainConfig.min_steps):
        if not (tol >= 0 and window > 0 and min_steps >= 0):
            msg = f"stopping rule needs tol >= 0, window > 0, min_steps >= 0; got {tol}, {window}, {min_steps}"
            raise ValueError(msg)
        self.tol, self.window, self.min_steps = tol, window, min_steps
        self.steps: list[int] = []
        self.best: list[float] = []  # best loss so far, at each check

    def update(self, step: int, loss: float) -> str | None:
        if not np.isfinite(loss):
            return None
        self.steps.append(step)
        self.best.append(min(loss, self.best[-1]) if self.best else loss)
        if step < max(self.min_steps, self.window) or self.steps[0] > step - self.window:
            return None
        # the best loss one window ago: the last check at or before step - window
        i = int(np.searchsorted(self.steps, step - self.window, side="right")) - 1
        gain = (self.best[i] - self.best[-1]) / abs(self.best[i])
        if gain < self.tol:
            return (f"validation loss improved {100 * gain:.2f} % over the last {step - self.steps[i]} steps "
                    f"(< {100 * self.tol:g} %)")
        return None


def stratified_split(codes: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean validation mask with ``floor(fraction * n_k)`` cells of each type (tiny types stay in training)."""
    mask = np.zeros(len(codes), dtype=bool)
    for k in np.unique(codes):
        idx = np.flatnonzero(codes == k)
        n_val = int(np.floor(fraction * len(idx)))
        if n_val:
            mask[rng.choice(idx, size=n_val, replace=False)] = True
    return mask


def validation_mask(codes: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """:func:`stratified_split` with at most ``MAX_VAL_CELLS`` cells in all. The validation loss is a fixed-noise
    estimate: a few thousand cells suffice, and 10 % of a million cells in one forward pass took more memory than
    everything else in fit."""
    fraction = min(fraction, MAX_VAL_CELLS / max(len(codes), 1))
    return stratified_split(codes, fraction, rng) if fraction > 0 else np.zeros(len(codes), bool)


class WeightedBatches(IterableDataset):
    """``n_batches`` minibatches of (cells, type codes) drawn with replacement with per-cell ``weights``.

    Each DDP rank draws from its own seeded stream, so ranks see different cells and a rerun sees the same.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, batch_size: int, n_batches: int,
                 seed: int):
        self.x, self.y, self.weights = x, y, weights
        self.batch_size, self.n_batches, self.seed = batch_size, n_batches, seed

    def __iter__(self):
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        gen = torch.Generator().manual_seed(self.seed + 7919 * rank)
        # inverse-CDF draws: O(batch · log cells) a step; torch.multinomial rescans all weights every call,
        # which at 1M cells cost more than the training step itself
        cdf = torch.cumsum(self.weights.double(), 0)
        for _ in range(self.n_batches):
            u = torch.rand(self.batch_size, generator=gen, dtype=torch.float64) * cdf[-1]
            idx = torch.searchsorted(cdf, u, right=True).clamp_(max=len(cdf) - 1)
            yield self.x[idx], self.y[idx]


class DiffusionTask(pl.LightningModule):
    """The Lightning wrapper of a :class:`BranchedDiffusionModule`: loss, optimizer, EMA, early stopping."""

    def __init__(self, module: BranchedDiffusionModule, *, max_steps: int, lr: float, weight_decay: float,
                 ema_decay: float, stop: StopRule, params, val, seed: int, schedule: str = "constant"):
        super().__init__()
        self.module = module
        self.ema = copy.deepcopy(module).requires_grad_(False)
        self.max_steps, self.lr, self.weight_decay, self.ema_decay = max_steps, lr, weight_decay, ema_decay
        self.stop, self.trainable, self.val, self.schedule = stop, params, val, schedule
        self.noise_gen = torch.Generator().manual_seed(seed)
        self.hist = {"step": [], "train_loss": [], "val_loss": [], "branch_loss": []}
        self.best, self.best_state, self.stop_reason = np.inf, None, None
        n = module.net.n_branches
        self.run_loss, self.run_n, self.branch_sum, self.branch_n = 0.0, 0, torch.zeros(n), torch.zeros(n)

    def configure_optimizers(self):
        # fused AdamW: one kernel for all parameters; the per-parameter loop cost ~5 ms of a ~25 ms CPU step
        # (CPU only: on CUDA torch already uses its multi-tensor path, and AMP's gradient unscaling forbids fused)
        fused = all(p.device.type == "cpu" for p in self.trainable)
        opt = torch.optim.AdamW(self.trainable, lr=self.lr, weight_decay=self.weight_decay, fused=fused or None)
        if self.schedule == "onecycle":  # annealed over a fixed budget: add_cell_type's fine-tuning (and fit_time.py)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=self.max_steps,
                                                        pct_start=0.1)
        else:
            warmup = min(WARMUP_STEPS, max(self.max_steps // 10, 1))
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.noise_gen.device != x.device:  # a seeded generator on the accelerator the batch lives on
            self.noise_gen = torch.Generator(device=x.device).manual_seed(int(self.noise_gen.initial_seed()))
        loss_rows, branch = self.module.loss(x, y, generator=self.noise_gen)
        loss = loss_rows.mean()
        self.run_loss, self.run_n = self.run_loss + loss.item(), self.run_n + 1
        self.branch_sum.index_add_(0, branch.cpu(), loss_rows.detach().cpu())
        self.branch_n.index_add_(0, branch.cpu(), torch.ones(len(branch)))
        if batch_idx % 25 == 0:  # Lightning's logging costs ~1 ms a call: a 20-ms step need not pay it every time
            self.log("train_loss", loss, prog_bar=True, on_step=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        step = self.global_step
        decay = min(self.ema_decay, (1 + step) / (10 + step))  # warm-up: early EMA follows the weights closely
        with torch.no_grad():
            torch._foreach_lerp_(list(self.ema.parameters()), list(self.module.parameters()), 1 - decay)

    def validation_step(self, batch, batch_idx):
        x, y, t, noise = batch
        with torch.no_grad():
            val = self.ema.loss(x, y, t=t, noise=noise)[0].mean()
        self.log("val_loss", val, prog_bar=True, sync_dist=True)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking or self.run_n == 0:
            return
        val = float(self.trainer.callback_metrics.get("val_loss", torch.tensor(np.nan)))
        self.check(val)

    def check(self, val: float) -> None:
        """Record a check; keep the best EMA weights; stop when the :class:`StopRule` says so."""
        h = self.hist
        h["step"].append(self.global_step)
        h["train_loss"].append(self.run_loss / max(self.run_n, 1))
        h["val_loss"].append(val)
        h["branch_loss"].append((self.branch_sum / self.branch_n.clamp_min(1)).numpy().copy())
        self.run_loss, self.run_n = 0.0, 0
        self.branch_sum.zero_(), self.branch_n.zero_()
        score = val if np.isfinite(val) else h["train_loss"][-1]
        if score < self.best:
            self.best = score
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.ema.state_dict().items()}
        reason = self.stop.update(self.global_step, score)
        if reason and self.global_step < self.max_steps:
            self.stop_reason = f"stopped at step {self.global_step} of {self.max_steps}: {reason}"
            logg.info(f"    {self.stop_reason}")
            self.trainer.should_stop = True


def train_module(
    module: BranchedDiffusionModule,
    x: np.ndarray,
    codes: np.ndarray,
    *,
    max_steps: int,
    # TrainConfig's defaults, defined there once (this is also called without it: add_cell_type, benchmarks)
    batch_size: int = TrainConfig.batch_size,
    lr: float = TrainConfig.lr,
    weight_decay: float = TrainConfig.weight_decay,
    ema_decay: float = TrainConfig.ema_decay,
    balance: float = TrainConfig.balance,
    val_fraction: float = TrainConfig.val_fraction,
    check_every: int = TrainConfig.check_every,
    stop_tol: float = TrainConfig.stop_tol,
    stop_window: int | None = TrainConfig.stop_window,
    min_steps: int = TrainConfig.min_steps,
    schedule: str = TrainConfig.schedule,
    random_state: int = 0,
    progress: bool | None = None,
    params=None,
    accelerator: str = TrainConfig.accelerator,
    devices=TrainConfig.devices,
    strategy=TrainConfig.strategy,
    checkpoint_dir: str | None = TrainConfig.checkpoint_dir,
    trainer_kwargs=None,
) -> dict:
    """Train ``module`` in place (its weights end as the best EMA weights); return the loss history.

    ``balance`` tempers class imbalance: a cell of a type with n_k cells is drawn with weight n_k**-balance
    (0: natural frequencies, 1: every type equally often), so rare types' own branches see enough steps.
    ``stop_tol``, ``stop_window``, ``min_steps``: the :class:`StopRule` (``stop_tol=0`` trains all ``max_steps``;
    ``stop_window=None``: :func:`default_window` of the training cells).
    ``schedule``: ``"constant"`` LR after a warm-up (default) or ``"onecycle"`` over ``max_steps`` (the previous
    default; the fixed fine-tuning budget of ``add_cell_type``). ``params`` restricts the trainable parameters (used
    to train only some branches). ``checkpoint_dir`` keeps Lightning checkpoints of the last and the best validation
    step; ``trainer_kwargs`` go to ``lightning.Trainer`` (e.g. ``num_nodes``, ``precision``).
    """
    if schedule not in ("constant", "onecycle"):
        msg = f"schedule must be 'constant' or 'onecycle', got {schedule!r}"
        raise ValueError(msg)
    rng = np.random.default_rng(random_state)
    seeds = rng.integers(2**31, size=3)
    types = codes if codes.ndim == 1 else codes[:, 0]  # (n, 1 + K): type code, then covariate codes
    val_mask = validation_mask(types, val_fraction, rng)
    x_tr, y_tr = torch.as_tensor(x[~val_mask]), torch.as_tensor(codes[~val_mask], dtype=torch.long)
    counts = np.bincount(types[~val_mask])
    weights = torch.as_tensor(counts[types[~val_mask]].astype(np.float64) ** -balance)
    train_dl = DataLoader(WeightedBatches(x_tr, y_tr, weights, batch_size, max_steps, int(seeds[0])),
                          batch_size=None)
    val_dl = None
    if val_mask.any():
        gen = torch.Generator().manual_seed(int(seeds[1]))
        reps = max(1, 2048 // int(val_mask.sum()))  # several fixed noise draws per validation cell
        x_val = torch.as_tensor(x[val_mask]).repeat(reps, 1)
        y_val = torch.as_tensor(codes[val_mask], dtype=torch.long)
        y_val = y_val.repeat(reps) if y_val.ndim == 1 else y_val.repeat(reps, 1)
        t_val = torch.rand(len(y_val), generator=gen) * (1 - T_EPS) + T_EPS
        val_dl = DataLoader([(x_val, y_val, t_val, torch.randn(x_val.shape, generator=gen))], batch_size=None)

    params = list(module.parameters()) if params is None else list(params)
    task = DiffusionTask(module, max_steps=max_steps, lr=lr, weight_decay=weight_decay, ema_decay=ema_decay,
                         stop=StopRule(stop_tol, stop_window or default_window(len(y_tr)), min_steps), params=params,
                         val=val_dl is not None,
                         seed=int(seeds[2]), schedule=schedule)
    trainer_kwargs = dict(trainer_kwargs or {})
    callbacks = list(trainer_kwargs.pop("callbacks", []))
    if enabled(progress):  # our bar over the step budget; Lightning's counted epochs ("Epoch 0/-2") on stdout
        callbacks.append(training_bar())
    if checkpoint_dir is not None:
        monitor = "val_loss" if val_dl is not None else "train_loss"
        callbacks.append(pl.callbacks.ModelCheckpoint(dirpath=checkpoint_dir, monitor=monitor, save_last=True))
    with quiet_third_party():
        trainer = pl.Trainer(
            accelerator=accelerator, devices=devices, strategy=strategy, max_steps=max_steps,
            val_check_interval=min(check_every, max_steps), check_val_every_n_epoch=None,
            limit_val_batches=1 if val_dl is not None else 0, num_sanity_val_steps=0, callbacks=callbacks,
            enable_progress_bar=False, enable_checkpointing=checkpoint_dir is not None, logger=False,
            enable_model_summary=False, gradient_clip_val=1.0, **trainer_kwargs,
        )
        t0 = time.perf_counter()
        with _interrupt.interruptible():  # Ctrl-C: a KeyboardInterrupt, not Lightning's sys.exit(1)
            trainer.fit(task, train_dataloaders=train_dl, val_dataloaders=val_dl)
        seconds = time.perf_counter() - t0
    if task.run_n:  # the steps after the last check (max_steps not a multiple of check_every)
        task.check(np.nan if val_dl is None else _val_loss(task, val_dl))
    module.load_state_dict(task.best_state if task.best_state is not None else task.ema.state_dict())
    module.cpu().eval()
    hist = {k: np.asarray(v) for k, v in task.hist.items()}
    hist["best_val_loss"] = float(task.best)
    hist["n_steps"] = int(hist["step"][-1])
    hist["seconds"] = float(seconds)
    hist["stop_reason"] = task.stop_reason or f"reached max_steps={max_steps}"
    return hist


def _val_loss(task: DiffusionTask, val_dl) -> float:
    x, y, t, noise = next(iter(val_dl))
    dev = next(task.ema.parameters()).device
    with torch.no_grad():
        return float(task.ema.loss(x.to(dev), y.to(dev), t=t.to(dev), noise=noise.to(dev))[0].mean())


def default_steps(n_cells: int) -> int:
    """The most optimizer steps a default fit may take: 4 per cell, within [4,000, 20,000].

    A cap, not the budget: training stops earlier by the validation-loss rule (:class:`StopRule`), which in
    ``benchmarks/fit_time.py`` stopped pbmc68k (700 cells) and 10k simulated cells well below this cap at held-out
    quality within seed noise of longer training.
    """
    return int(np.clip(4 * n_cells, 4000, 20000))
