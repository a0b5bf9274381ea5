"""The line fit prints for each epoch.

On a terminal the line is redrawn in place as batches finish: a bar, batches done,
running loss and accuracy, samples per second and time left. Elsewhere (a file, a
pipe, a notebook log) only the finished line of each epoch is printed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TextIO

BAR_WIDTH = 24
REDRAW_SECONDS = 0.1


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class EpochProgress:
    """epochs : epochs in the fit; n_samples, batch_size : of one epoch;
    classification : whether to show accuracy; stream : where to write."""

    def __init__(
        self,
        epochs: int,
        n_samples: int,
        batch_size: int,
        classification: bool,
        stream: TextIO | None = None,
    ) -> None:
        self.epochs = epochs
        self.n_samples = n_samples
        self.n_batches = -(-n_samples // batch_size)
        self.batch_size = batch_size
        self.classification = classification
        self.stream = stream or sys.stdout
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.epoch = 0
        self.started = self.last_drawn = 0.0

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.started = self.last_drawn = time.perf_counter()

    def update(
        self, samples_done: int, loss_sum: float, n_correct: float, outputs_per_sample: int = 1
    ) -> None:
        """Redraw (on a terminal, at most every REDRAW_SECONDS) after samples_done."""
        now = time.perf_counter()
        if not self.live or now - self.last_drawn < REDRAW_SECONDS or samples_done == 0:
            return
        self.last_drawn = now
        rate = samples_done / max(now - self.started, 1e-9)
        left = (
            self.n_samples - samples_done + (self.epochs - self.epoch - 1) * self.n_samples
        ) / rate
        figures = {"loss": loss_sum / samples_done}
        if self.classification:
            figures["accuracy"] = n_correct / (samples_done * outputs_per_sample)
        self._write(
            "\r"
            + self._line(samples_done, figures, f"{rate:,.0f} samples/s - {_duration(left)} left"),
            end="",
        )

    def end_epoch(self, logs: Mapping[str, float]) -> None:
        """The epoch's final line, with its validation figures."""
        elapsed = time.perf_counter() - self.started
        rate = self.n_samples / max(elapsed, 1e-9)
        line = self._line(self.n_samples, logs, f"{rate:,.0f} samples/s - {elapsed:.2f} s")
        self._write(("\r" if self.live else "") + line + ("\x1b[K" if self.live else ""), end="\n")

    def _line(self, samples_done: int, figures: Mapping[str, float], tail: str) -> str:
        batches = min(-(-samples_done // self.batch_size), self.n_batches)
        filled = BAR_WIDTH * batches // self.n_batches
        bar = "=" * filled + (">" if filled < BAR_WIDTH else "") + " " * (BAR_WIDTH - filled - 1)
        shown = " - ".join(f"{key} {value:.4f}" for key, value in figures.items())
        return (
            f"epoch {self.epoch + 1}/{self.epochs} [{bar[:BAR_WIDTH]}] "
            f"{batches}/{self.n_batches} - {shown} - {tail}"
        )

    def _write(self, text: str, end: str) -> None:
        self.stream.write(text + end)
        self.stream.flush()
