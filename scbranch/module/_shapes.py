"""Whether saved weights fit the network a config describes, decided before the network is allocated.

The network is built on PyTorch's ``meta`` device (shapes only, no memory), so a re-signed config asking for a
network of hundreds of GB costs nothing: its shapes cannot match weights a capped ``model.pt`` holds, and the
mismatch is an error before anything is allocated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn


def check_shapes(build: Callable[[], nn.Module], state: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise ValueError unless ``state`` has exactly the names and shapes of ``build()``'s state dict."""
    with torch.device("meta"), torch.random.fork_rng():
        expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    wrong = [f"{k}: saved {got[k]}, config {expected[k]}" for k in expected if k in got and got[k] != expected[k]]
    if missing or extra or wrong:
        detail = wrong[:1] or [f"{'missing' if missing else 'unexpected'} {(missing or extra)[:3]}"]
        msg = f"the saved weights do not fit {what} its config describes ({detail[0]})"
        raise ValueError(msg)
