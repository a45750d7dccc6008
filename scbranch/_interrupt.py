"""Ctrl-C during Lightning training stays a KeyboardInterrupt.

Lightning (``lightning.pytorch.trainer.call``) catches a KeyboardInterrupt, ignores SIGINT while it shuts down
and calls ``sys.exit(1)`` from its ``except`` block: a notebook's ``except KeyboardInterrupt`` never fires and a
script exits 1. :func:`interruptible` recognizes that exit (a SystemExit raised while handling a
KeyboardInterrupt), makes sure SIGINT is handled again, and re-raises the KeyboardInterrupt, so the caller's
transaction rolls back as for any error.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def interruptible():
    """Run a Lightning ``fit`` (scbranch's or scvi-tools') inside this block."""
    main = threading.current_thread() is threading.main_thread()  # signal handlers live in the main thread
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    except SystemExit as exit_:
        interrupt = exit_.__context__
        if not isinstance(interrupt, KeyboardInterrupt):
            raise
        if handler is not None and signal.getsignal(signal.SIGINT) != handler:  # Lightning left it ignored
            signal.signal(signal.SIGINT, handler)
        raise interrupt from None
