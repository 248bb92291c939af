"""Progress for long work: a tqdm bar on a terminal, plain lines everywhere else.

tqdm draws nothing when stderr is not a terminal, so ``make run > run.log``, CI logs and ``nohup``
saw nothing for half an hour. Off a terminal, ``Progress`` prints one line per finished unit (or per
``line_every`` units) with what finished, the elapsed time, how many are left and an ETA.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm


def format_seconds(seconds: float) -> str:
    """'42 s', '3 min 05 s', '1 h 02 min'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """``update()`` after each finished unit; ``close()`` at the end (or use as a context manager)."""

    def __init__(self, total: int, desc: str, unit: str = "step", *, enabled: bool = True,
                 line_every: int = 1, stream: TextIO | None = None, leave: bool = True) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.line_every = max(1, line_every)
        self.done = 0
        self.start = time.monotonic()
        self.note = ""
        terminal = enabled and self.stream.isatty()
        self.bar = tqdm(total=total, desc=desc, unit=unit, leave=leave, file=self.stream) if terminal else None
        if enabled and not terminal and line_every == 1:
            print(f"{desc}: {total} {unit}s to go", file=self.stream, flush=True)

    def update(self, n: int = 1, note: str = "") -> None:
        """Count ``n`` more finished units; ``note`` says what just finished (e.g. 'apoz 4x')."""
        self.done += n
        self.note = note or self.note
        if self.bar is not None:
            if note:
                self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(n)
        elif self.enabled and (self.done % self.line_every == 0 or self.done >= self.total):
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        left = max(self.total - self.done, 0)
        eta = elapsed / self.done * left if self.done else 0.0
        note = f" ({self.note})" if self.note else ""
        return (f"{self.desc}: {self.done}/{self.total} {self.unit}s{note}, {format_seconds(elapsed)} elapsed, "
                f"{left} left, ETA {format_seconds(eta)}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
