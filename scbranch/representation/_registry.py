"""The representations by name: ``fit(representation=name)`` builds one from here, and ``load`` rebuilds the saved
one from here. A new representation is one class (the :class:`~._protocol.Representation` protocol, with its own
``Options`` dataclass) and one :func:`register_representation`; nothing else in the package names it."""

from __future__ import annotations

import dataclasses

REPRESENTATIONS: dict[str, type] = {}


def register_representation(cls: type) -> type:
    """Make the representation class ``cls`` available as ``representation=cls.kind`` (a class decorator)."""
    missing = [a for a in ("kind", "input", "Options", "from_options", "from_state_dict") if not hasattr(cls, a)]
    if missing or not dataclasses.is_dataclass(getattr(cls, "Options", None)):
        msg = f"{cls!r} is not a representation: it needs {missing or ['Options as a dataclass']}"
        raise TypeError(msg)
    if cls.input not in ("lognorm", "counts"):
        msg = f"{cls.__name__}.input must be 'lognorm' or 'counts', got {cls.input!r}"
        raise ValueError(msg)
    REPRESENTATIONS[cls.kind] = cls
    return cls


def get_representation(name: str) -> type:
    """The representation class registered as ``name``, or a clear error listing the choices."""
    if name not in REPRESENTATIONS:
        msg = f"representation must be one of {list(REPRESENTATIONS)}, got {name!r}"
        raise ValueError(msg)
    return REPRESENTATIONS[name]
