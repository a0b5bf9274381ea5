"""The line fit prints for each epoch.

On a terminal the line is redrawn in place as batches finish: the epoch, a bar,
batches done, running loss and accuracy, samples per second and time left. It is
fitted to the terminal's width at each redraw (the least important fields go first,
see FIELD_RANKS), because a line that wraps cannot be redrawn in place. Elsewhere (a
file, a pipe, a notebook log) only the finished line of each epoch is printed, whole.

The time left comes from the rate over the later half of the work done so far in
the fit, so the slow first calls (engine set-up, first touches of memory) stop
counting once the fit has done twice as much work, and later epochs are estimated
from the epochs before them.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

BAR_WIDTH = 24
REDRAW_SECONDS = 0.1
#: how soon a field is dropped from a line too wide for the terminal: highest first,
#: the rightmost first among equals; rank 0 is never dropped. Figures not listed
#: (diagnostics readings) rank DEFAULT_RANK.
FIELD_RANKS = {
    "epoch": 0,
    "loss": 1,
    "time": 1,
    "batches": 2,
    "accuracy": 2,
    "val_loss": 3,
    "val_accuracy": 3,
    "bar": 5,
    "rate": 6,
}
DEFAULT_RANK = 4
MAX_MARKS = 256  # (work, time) marks kept for the rate; thinned when there are more


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def fit_fields(fields: list[tuple[str, str, str]], width: int) -> str:
    """The fields joined into a line of at most width characters.

    fields : (name, separator before it, text) in display order; names rank in
    FIELD_RANKS. Fields are dropped (highest rank, then rightmost, first) until the
    line fits; a line of rank-0 fields alone that is still too wide is cut.
    """
    kept = list(fields)

    def joined() -> str:
        return "".join(sep + text for _, sep, text in kept).lstrip()

    line = joined()
    while len(line) > width:
        ranks = [FIELD_RANKS.get(name, DEFAULT_RANK) for name, _, _ in kept]
        worst = max(ranks)
        if worst == 0:
            return line[: max(width, 0)]
        del kept[len(ranks) - 1 - ranks[::-1].index(worst)]
        line = joined()
    return line


class EpochProgress:
    """epochs : epochs in the fit; n_samples, batch_size : of one epoch;
    classification : whether to show accuracy; stream : where to write;
    clock : seconds as a float (time.perf_counter; tests pass a fake one)."""

    def __init__(
        self,
        epochs: int,
        n_samples: int,
        batch_size: int,
        classification: bool,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.epochs = epochs
        self.n_samples = n_samples
        self.n_batches = -(-n_samples // batch_size)
        self.batch_size = batch_size
        self.classification = classification
        self.stream = stream or sys.stdout
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.epoch = 0
        self.started = self.last_drawn = 0.0
        self.marks: list[tuple[int, float]] = []  # (samples done in the fit, time)

    def resize(self, n_samples: int) -> None:
        """An epoch of n_samples from now on (a stream's length is known once read)."""
        self.n_samples = n_samples
        self.n_batches = max(1, -(-n_samples // self.batch_size))

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.started = self.last_drawn = self.clock()
        if not self.marks:
            self.marks.append((epoch * self.n_samples, self.started))

    def update(
        self, samples_done: int, loss_sum: float, n_correct: float, outputs_per_sample: int = 1
    ) -> None:
        """Redraw (on a terminal, at most every REDRAW_SECONDS) after samples_done."""
        if not self.live or samples_done == 0:
            return
        now = self.clock()
        work = self.epoch * self.n_samples + samples_done
        rate = self._rate(work, now)
        self._mark(work, now)
        if now - self.last_drawn < REDRAW_SECONDS:
            return
        self.last_drawn = now
        left = (self.epochs * self.n_samples - work) / rate
        figures = {"loss": loss_sum / samples_done}
        if self.classification:
            figures["accuracy"] = n_correct / (samples_done * outputs_per_sample)
        line = self._line(samples_done, figures, rate, f"{_duration(left)} left")
        self._write("\r" + line + "\x1b[K", end="")

    def end_epoch(self, logs: Mapping[str, float]) -> None:
        """The epoch's final line, with its validation figures."""
        elapsed = self.clock() - self.started
        rate = self.n_samples / max(elapsed, 1e-9)
        line = self._line(self.n_samples, logs, rate, f"{elapsed:.2f} s")
        self._write(("\r" if self.live else "") + line + ("\x1b[K" if self.live else ""), end="\n")

    def _rate(self, work: int, now: float) -> float:
        """Samples per second over the later half of the work done so far: from the
        last mark at or before half of work (the first mark if none is)."""
        start = self.marks[0]
        for mark in self.marks:
            if mark[0] > work / 2:
                break
            start = mark
        return (work - start[0]) / max(now - start[1], 1e-9)

    def _mark(self, work: int, now: float) -> None:
        self.marks.append((work, now))
        if len(self.marks) > MAX_MARKS:  # keep the first, every other one, and the last
            self.marks = self.marks[:-1:2] + self.marks[-1:]

    def _line(self, samples_done: int, figures: Mapping[str, float], rate: float, tail: str) -> str:
        batches = min(-(-samples_done // self.batch_size), self.n_batches)
        filled = BAR_WIDTH * batches // self.n_batches
        bar = "=" * filled + (">" if filled < BAR_WIDTH else "") + " " * (BAR_WIDTH - filled - 1)
        fields = [
            ("epoch", "", f"epoch {self.epoch + 1}/{self.epochs}"),
            ("bar", " ", f"[{bar[:BAR_WIDTH]}]"),
            ("batches", " ", f"{batches}/{self.n_batches}"),
        ]
        fields += [  # a rate may be tiny: significant digits, not decimals
            (key, " - ", f"{key} {value:.3g}" if key == "lr" else f"{key} {value:.4f}")
            for key, value in figures.items()
        ]
        fields += [("rate", " - ", f"{rate:,.0f} samples/s"), ("time", " - ", tail)]
        if not self.live:
            return fit_fields(fields, sys.maxsize)
        # one column spare: a line that fills the last column wraps on some terminals
        return fit_fields(fields, shutil.get_terminal_size().columns - 1)

    def _write(self, text: str, end: str) -> None:
        self.stream.write(text + end)
        self.stream.flush()
