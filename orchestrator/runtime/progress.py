"""What a running sweep shows: a tqdm bar of thresholds found (stderr), redrawn at most twice a second."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class ProgressBar:
    """The bar of a sweep's thresholds; a no-op when disabled."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar: Any = None
        self._drawn = 0.0
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="thresholds", unit="seed", dynamic_ncols=True)

    def grow(self, total: int) -> None:
        if self.bar is not None:
            self.bar.total = total

    def update(self, progress: Callable[[], dict], force: bool = False) -> None:
        """Redraw the bar (thresholds found, and the counts `progress()` gives) at most every 0.5 s."""
        if self.bar is None:
            return
        now = time.monotonic()
        if force or now - self._drawn >= 0.5:
            progress = progress()
            self.bar.n = progress["thresholds"]
            self.bar.set_postfix_str(f"cells done {progress['cells_done']}/{progress['cells']}, probes done "
                                     f"{progress['probes_done']}, in flight {progress['in_flight']}", refresh=True)
            self._drawn = now

    def close(self, progress: Callable[[], dict]) -> None:
        if self.bar is not None:
            self.update(progress, force=True)
            self.bar.close()
