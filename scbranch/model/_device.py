"""Where a trained model's networks run when it generates, transmutes, imputes or scores: ``device=``.

After training the networks live on the CPU (saved and loaded there). A call with ``device="cuda"`` moves the
score network and the type classifier to the GPU for that call only and back afterwards; the samplers'
arithmetic, the noise schedule and every random draw stay on the CPU, so a seed draws the same noise on any
device and only the network evaluations (the cost of sampling: cells × steps × a residual MLP) run on the GPU.
Each call moves its tensors (cells × ~30 floats) to the device and the result back: small next to the network.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager

import torch

DEVICES = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def resolve(device) -> torch.device:
    """``"auto"``: CUDA if torch finds a GPU, else the CPU; otherwise the device named, which must exist."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        msg = f"device must be {DEVICES} (or a torch.device); got {device!r}"
        raise ValueError(msg) from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        msg = (f"device={device!r}, but torch finds no CUDA GPU here (torch.cuda.is_available() is False; this "
               f"torch {torch.__version__} may be a CPU build); use device='auto' or 'cpu'")
        raise ValueError(msg)
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        msg = f"device={device!r}, but torch finds {torch.cuda.device_count()} CUDA GPU(s)"
        raise ValueError(msg)
    if dev.type == "mps" and not torch.backends.mps.is_available():
        msg = f"device={device!r}, but torch finds no Apple GPU (MPS) here; use device='auto' or 'cpu'"
        raise ValueError(msg)
    if dev.type not in ("cpu", "cuda", "mps"):
        msg = f"device must be {DEVICES}; got {device!r}"
        raise ValueError(msg)
    return dev


def _to(value, dev: torch.device):
    return value.to(dev) if isinstance(value, torch.Tensor) else value


class _Placed:
    """A network on ``dev`` called with CPU tensors: arguments moved there, the output moved back. Anything
    else (``sde``, ``net``, …) is the network's own."""

    def __init__(self, module: torch.nn.Module, dev: torch.device):
        self._module, self._dev = module, dev

    def __call__(self, *args, **kwargs):
        out = self._module(*(_to(a, self._dev) for a in args), **{k: _to(v, self._dev) for k, v in kwargs.items()})
        return out.cpu()

    def __getattr__(self, name):
        return getattr(self._module, name)


@contextmanager
def on_device(model, device):
    """Within the block, ``model.module`` and ``model.classifier`` evaluate on ``device`` (see the module
    docstring); on the CPU nothing changes. They are back on the CPU afterwards, also after an error."""
    dev = resolve(device)
    if dev.type == "cpu":
        yield dev
        return
    module, classifier = model.module, model.classifier
    try:
        model.module = _Placed(module.to(dev), dev)
        if classifier is not None:  # the TypeClassifier keeps its types and weights; its network is placed
            model.classifier = dataclasses.replace(classifier, net=_Placed(classifier.net.to(dev), dev))
        yield dev
    finally:
        model.module, model.classifier = module.cpu(), classifier
        if classifier is not None:
            classifier.net.cpu()
