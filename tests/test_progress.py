"""The progress line: redrawn in place on a terminal, never wider than it, and a time
estimate that a slow start does not throw off (a fake clock and a fake terminal)."""

import os
import re

import numpy as np
import pytest

from fastbp import progress
from fastbp.progress import EpochProgress, fit_fields
from tests.helpers import dense_model

WIDTHS = [40, 60, 80, 120, 200]


class FakeTerminal:
    """A stream that says it is a terminal and keeps what is written."""

    def __init__(self, tty=True):
        self.text = ""
        self.tty = tty

    def isatty(self):
        return self.tty

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def drawn(self):
        """Each line as the terminal shows it, once drawn (redraws and finished lines)."""
        return [
            part.replace("\x1b[K", "") for part in re.split(r"[\r\n]", self.text) if part.strip()
        ]


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def columns(monkeypatch):
    """Sets the terminal's width that the progress line sees; every update redraws."""
    monkeypatch.setattr(progress, "REDRAW_SECONDS", 0.0)

    def set_width(width):
        monkeypatch.setattr(
            progress.shutil, "get_terminal_size", lambda *a: os.terminal_size((width, 24))
        )

    return set_width


def run_fit(bar, clock, epochs, n_batches, batch_size, per_batch, warmup=0.0, pause=0.0):
    """Drives bar as Sequential.fit does: calls of a growing number of batches, each
    update after one call; yields (batches done in the fit, true seconds left)."""
    total = epochs * n_batches
    for epoch in range(epochs):
        bar.start_epoch(epoch)
        done, per_call = 0, 1
        while done < n_batches:
            step = min(per_call, n_batches - done)
            clock.now += step * per_batch
            if epoch == done == 0:
                clock.now += warmup  # engine set-up and first touches, in the first call
            done += step
            bar.update(done * batch_size, 0.5 * done * batch_size, 0.9 * done * batch_size)
            left = (total - epoch * n_batches - done) * per_batch + (epochs - epoch - 1) * pause
            yield epoch * n_batches + done, left
            per_call = min(per_call * 4, 20)
        bar.end_epoch({"loss": 0.5, "accuracy": 0.9, "val_loss": 0.6, "val_accuracy": 0.8})
        clock.now += pause  # validation between epochs


def seconds_left(line):
    match = re.search(r"(?:(\d+):)?(\d+):(\d\d) left", line)
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return 3600 * hours + 60 * minutes + seconds


# --- width ----------------------------------------------------------------------------


def test_fields_are_dropped_by_rank_then_from_the_right():
    fields = [
        ("epoch", "", "epoch 1/9"),
        ("bar", " ", "[====]"),
        ("batches", " ", "3/9"),
        ("loss", " - ", "loss 1"),
        ("reading_a", " - ", "reading_a 2"),
        ("reading_b", " - ", "reading_b 3"),
        ("rate", " - ", "9 samples/s"),
    ]
    full = "epoch 1/9 [====] 3/9 - loss 1 - reading_a 2 - reading_b 3 - 9 samples/s"
    assert fit_fields(fields, len(full)) == full
    assert fit_fields(fields, len(full) - 1) == full.replace(" - 9 samples/s", "")
    # the bar goes before the readings, then the rightmost reading
    assert fit_fields(fields, 50) == "epoch 1/9 3/9 - loss 1 - reading_a 2 - reading_b 3"
    assert fit_fields(fields, 49) == "epoch 1/9 3/9 - loss 1 - reading_a 2"
    assert fit_fields(fields, 25) == "epoch 1/9 3/9 - loss 1"
    assert fit_fields(fields, 5) == "epoch"  # rank 0 alone is cut, never wider


@pytest.mark.parametrize("width", WIDTHS)
def test_the_live_line_never_reaches_the_terminals_edge(columns, width):
    columns(width)
    terminal, clock = FakeTerminal(), FakeClock()
    bar = EpochProgress(12, 60_000, 32, True, stream=terminal, clock=clock)
    for _ in run_fit(bar, clock, 2, 1875, 32, per_batch=0.01):
        pass
    lines = terminal.drawn()
    assert len(lines) > 100 and max(len(line) for line in lines) <= width - 1
    assert all(line.startswith("epoch ") for line in lines)
    assert terminal.text.count("\n") == 2  # one finished line per epoch
    running = [line for line in lines if "left" in line]
    assert len(running) == len(lines) - 2
    if width >= 120:  # room for everything while running
        assert all("samples/s" in line and "[" in line for line in running)
    if width <= 60:
        assert not any("samples/s" in line for line in lines)
        assert all(re.search(r" - loss 0\.5000 - .* left$", line) for line in running)
    if width == 60:
        assert all(re.search(r"\d+/1875 - loss", line) for line in lines)


def test_a_narrower_terminal_is_seen_at_the_next_redraw(columns):
    terminal, clock = FakeTerminal(), FakeClock()
    bar = EpochProgress(1, 1000, 10, False, stream=terminal, clock=clock)
    bar.start_epoch(0)
    columns(200)
    clock.now += 1
    bar.update(500, 1.0, 0.0)
    columns(40)
    clock.now += 1
    bar.update(600, 1.0, 0.0)
    first, second = terminal.drawn()
    assert "samples/s" in first and len(second) <= 39 and "samples/s" not in second


def test_a_file_gets_whole_lines_whatever_the_terminal(columns):
    columns(40)
    stream, clock = FakeTerminal(tty=False), FakeClock()
    bar = EpochProgress(2, 6400, 32, True, stream=stream, clock=clock)
    for _ in run_fit(bar, clock, 2, 200, 32, per_batch=0.01):
        pass
    lines = stream.text.splitlines()
    assert len(lines) == 2 and "\r" not in stream.text and "\x1b" not in stream.text
    assert all("samples/s" in line and "val_accuracy 0.8000" in line for line in lines)


# --- time left ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "warmup, pause", [(0.0, 0.0), (30.0, 0.0), (300.0, 0.0), (30.0, 5.0)], ids=str
)
def test_time_left_within_2x_after_a_tenth_of_the_first_epoch(columns, warmup, pause):
    """A warm-up of up to three epochs' work (300 s for 100 s epochs) would make
    elapsed / fraction done (the old estimate) 31x too long at 10 % of the first epoch."""
    columns(120)
    terminal, clock = FakeTerminal(), FakeClock()
    bar = EpochProgress(5, 1000 * 32, 32, True, stream=terminal, clock=clock)
    checked = 0
    for done, left in run_fit(bar, clock, 5, 1000, 32, 0.1, warmup, pause):
        if done >= 100:
            shown = seconds_left(terminal.drawn()[-1])
            assert left / 2 <= shown <= 2 * left + 1, (done, shown, left)
            checked += 1
    assert checked > 200


def test_a_steady_rate_gives_the_exact_time_left(columns):
    columns(120)
    terminal, clock = FakeTerminal(), FakeClock()
    bar = EpochProgress(3, 500 * 10, 10, False, stream=terminal, clock=clock)
    for _, left in run_fit(bar, clock, 3, 500, 10, per_batch=1.0):
        assert abs(seconds_left(terminal.drawn()[-1]) - left) <= 1
        assert "10 samples/s" in terminal.drawn()[-1]


def test_the_rate_marks_stay_few_over_a_long_fit():
    clock = FakeClock()
    bar = EpochProgress(50, 1000, 1, False, stream=FakeTerminal(), clock=clock)
    for _ in run_fit(bar, clock, 50, 1000, 1, per_batch=0.01):
        pass
    assert len(bar.marks) <= progress.MAX_MARKS + 1


# --- inside fit -----------------------------------------------------------------------


def test_fit_redraws_in_place_on_a_terminal(monkeypatch, columns):
    columns(200)
    terminal = FakeTerminal()
    monkeypatch.setattr(progress.sys, "stdout", terminal)
    monkeypatch.setattr(progress, "REDRAW_SECONDS", 0.0)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((900, 10)), rng.integers(0, 3, 900)
    model = dense_model([(10, None), (8, "relu"), (3, None)])
    model.fit(X, y, epochs=2, batch_size=8, verbose=1)
    lines = terminal.text.split("\n")
    assert len(lines) == 3 and lines[-1] == ""  # one finished line per epoch
    assert lines[0].count("\r") >= 2  # redrawn while the epoch ran
    assert "113/113" in lines[1] and "left" in lines[0] and "samples/s" in lines[1]
