"""The garbage collector in a long-running process (`clinicall serve`, a FastAGI worker)."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Called once the process serves: what start-up made (modules, the app, settings, compiled queries)
    lives until the process exits, so it is collected once more and then moved out of the collector's
    sight (gc.freeze). Every later full collection scans only what was made since, and takes well under a
    millisecond instead of stalling the event loop for tens of milliseconds (every call and screen waiting
    behind it). Not for tests: each app a test starts would stay in memory."""
    gc.collect()
    gc.freeze()
