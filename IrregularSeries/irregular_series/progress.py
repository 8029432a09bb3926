"""A progress bar on the terminal: tqdm's when it is installed, else one status line; nothing
when the output is not a terminal (a log file or a pipe gets no carriage-return noise)."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Counts ``total`` steps; ``step(text)`` after each, ``close()`` at the end (or use ``with``)."""

    def __init__(self, total: int, unit: str, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.total = total
        self.unit = unit
        self.done = 0
        self._bar: Any = None
        if self.enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, unit=" " + unit, file=sys.stderr, dynamic_ncols=True, leave=False)

    def step(self, text: str = "", count: int = 1) -> None:
        self.done += count
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(text[:60], refresh=False)
            self._bar.update(count)
            if self.done >= self.total:
                self._bar.refresh()  # tqdm skips redraws closer than 0.1 s: show the last step
        else:
            sys.stderr.write(f"\r\x1b[K[{self.done}/{self.total} {self.unit}] {text}"[:100])
            sys.stderr.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
