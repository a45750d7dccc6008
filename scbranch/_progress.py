"""Progress bars and third-party chatter, following scanpy's verbosity.

``progress=None`` (every public default) means "follow ``sc.settings.verbosity``": bars at scanpy's default (1)
and above, none at 0, where ``fit`` and ``generate`` print nothing at all. Why our own bars: Lightning's bar
printed ``Epoch 0/-2 ━━━ 200/200`` (epochs are meaningless under a step budget) to stdout even at verbosity 0,
and a loop of ``generate`` calls stacked empty ``sampling: 0%`` bars. So:

- training: Lightning's bar is always off; :func:`training_bar` is one tqdm bar per fit whose total (the step
  budget) is known at the start; when the stopping rule ends training early the bar says so.
- sampling: :func:`sampling_bar` appears only when a call runs longer than :data:`BAR_DELAY` seconds (tqdm's
  ``delay``), so quick calls in a loop print nothing, and goes away when done.
- :func:`quiet_third_party`: Lightning's and scvi-tools' info lines ("GPU available", "Seed set to", tips) are
  hidden always, their warnings too at verbosity 0.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from functools import cache

from tqdm.auto import tqdm

from ._logging import verbosity

BAR_DELAY = 0.5  # seconds before a bar shows: a call quicker than this prints nothing
_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning", "scvi", "pytorch_lightning")
# Lightning warnings that are advice about data loaders and logging, not about the user's data
_NOISE = (".*(does not have many workers|IterableDataset|GPU available|LeafSpec|limit_val_batches|litlogger"
          "|in eval mode|Seed set to|smaller than the logging interval).*")


def enabled(progress: bool | None) -> bool:
    """``progress`` as given, or (``None``) whether scanpy's verbosity shows bars (≥ 1)."""
    return verbosity() >= 1 if progress is None else bool(progress)


def training_bar(desc: str = "training", every: int = 25):
    """A Lightning callback: one tqdm bar over a fit's optimizer steps (rank 0 only), total known at the start."""
    return _training_bar_class()(desc, every)


@cache
def _training_bar_class():
    import lightning.pytorch as pl  # here, so that sampling never imports Lightning

    class TrainingBar(pl.Callback):
        def __init__(self, desc: str, every: int):
            self.desc, self.every, self.bar = desc, every, None

        def on_train_start(self, trainer, pl_module):
            if not trainer.is_global_zero:
                return
            total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else \
                trainer.estimated_stepping_batches  # scVI budgets in epochs: Lightning knows the steps
            self.bar = tqdm(total=int(total), desc=self.desc, unit="step", delay=BAR_DELAY, dynamic_ncols=True)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if self.bar is None:
                return
            self.bar.update(1)
            if batch_idx % self.every == 0:  # refreshing the loss every step costs more than a step on small data
                metrics = trainer.callback_metrics
                loss = metrics.get("train_loss", metrics.get("train_loss_step"))
                if loss is not None:
                    self.bar.set_postfix(loss=f"{float(loss):.3f}", refresh=False)

        def on_train_end(self, trainer, pl_module):
            if self.bar is None:
                return
            if self.bar.n < self.bar.total:  # the stopping rule ended training: say so rather than leave a gap
                self.bar.set_postfix_str("stopped early: validation loss no longer improving", refresh=False)
                self.bar.total = self.bar.n
            self.bar.close()
            self.bar = None

    return TrainingBar


def sampling_bar(total: int, progress: bool | None, desc: str = "sampling") -> tqdm:
    """A bar over reverse-diffusion steps that shows only if the call takes longer than :data:`BAR_DELAY`."""
    return tqdm(total=total, desc=desc, unit="step", disable=not enabled(progress), leave=False, delay=BAR_DELAY)


@contextmanager
def quiet_third_party():
    """Lightning and scvi-tools report their accelerator, seeds, tips and data-loader advice on every fit: noise
    in a notebook. Their info lines are hidden; at verbosity 0 their warnings too (scbranch's own warnings
    follow the same verbosity)."""
    silent = verbosity() < 1
    loggers = [logging.getLogger(n) for n in _LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR if silent else logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _NOISE)
        if silent:
            for module in (r"lightning\..*", r"scvi\..*", r"torch\..*"):
                warnings.filterwarnings("ignore", module=module)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)
