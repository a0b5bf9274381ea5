"""fastbp's backends compared in one process, printed as one report.

    python benchmarks/report.py [--dtype float32|float64] [--quick] [--repeats N]
                                [--pause SECONDS] [--no-torch] [--no-compile] [--no-jax]
                                [--gemm auto|scipy|mkl]

Four tables, then the performance targets with each marked met or not met:

1. training step, µs per step, per config: the Cython backend, the NumPy
   backend, the GEMM floor (the step's GEMM calls alone, through the same BLAS)
   and the peers that are installed: PyTorch eager on the CPU (as many threads as
   the BLAS), torch.compile of the same step (forward, loss, backward and SGD
   update in one compiled function) and JAX (one jax.jit of the step with the
   parameters donated); the share of the GEMM peak the step reaches (its GEMM
   FLOPs over its time, against the provider's best rate on 1024^3); ratios
   NumPy/Cython, Cython/floor and peer/Cython;
2. predict throughput, rows/s, over 10 000 rows (2 000 with --quick);
3. one epoch over 20 000 samples of the tiny config, batch 32 (JAX: one jit of
   lax.scan over the batches);
4. a training step of each layer type (Maxout, PReLU, Activation, Dropout, a
   softmax output) on the small config's shapes, Cython against NumPy.

Method (docs/design.md §4). The machine is shared and noisy, so figures are ratios
taken in this one process, never absolute times compared across runs:

- every contender is warmed up first, and a block size k is chosen so that k
  back-to-back calls take about 40 ms (10 ms with --quick);
- then come --repeats rounds; each round times one block of k calls of every
  contender, one after the other, in an order rotated from round to round;
- a figure is the median over rounds of the per-call time, and a ratio is the
  median over rounds of that round's ratio, so both sides of a ratio are
  measured within moments of each other;
- before each block the script sleeps --pause seconds, then (when the block
  holds more than one call) makes one untimed call to wake the BLAS up. NumPy and the
  compiled kernels use two different OpenBLAS
  builds (NumPy's and SciPy's), each with its own worker threads, which keep
  spinning for about 0.1 s after a call; without the pause, one library's
  spinning workers steal a core from the other's next block on a 2-core
  machine and the figures swing several-fold (--pause 0 shows it).

The fastbp contenders are called through the backends' hot-path methods
(step, epoch, predict) on arrays prepared once, skipping the input validation
the public Sequential methods do per call. Everything trains with plain SGD at
lr 0.01; successive steps take the next of 8 distinct batches. See workloads.py.
"""

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)  # run as a script: measure this checkout's fastbp

import numpy as np  # noqa: E402

import fastbp  # noqa: E402
from benchmarks import workloads  # noqa: E402
from benchmarks.workloads import CONFIGS  # noqa: E402

EPOCH_CONFIG = "tiny"
EPOCH_SAMPLES = 20_000


@dataclass(frozen=True)
class Settings:
    """How long and how carefully to measure."""

    dtype: str
    rounds: int
    block_seconds: float  # time one block of k calls should take
    warmup_seconds: float  # least warm-up time per contender
    pause_seconds: float  # sleep before each block
    predict_rows: int
    use_torch: bool
    use_compile: bool
    use_jax: bool
    gemm: str | None  # provider to use, None: as loaded
    small_flops: float | None = None  # the small path's threshold, None: fastbp's


def parse_settings(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument(
        "--quick", action="store_true", help="few short rounds: a smoke run in well under a minute"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="rounds per measurement (default 11, or 3 with --quick)",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.15,
        help="seconds to sleep before each timed block (default 0.15)",
    )
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="leave torch.compile out (its compiles take minutes)",
    )
    parser.add_argument("--no-jax", action="store_true", help="leave JAX out")
    parser.add_argument(
        "--small-flops",
        type=float,
        default=None,
        help="the small path's threshold in flops (fastbp.gemm.set_small_flops; 0 turns "
        "it off; default: fastbp's)",
    )
    parser.add_argument(
        "--gemm",
        choices=fastbp.gemm.CHOICES,
        default=None,
        help="the compiled engine's GEMM provider (default: FASTBP_GEMM, else auto)",
    )
    args = parser.parse_args(argv)
    rounds = args.repeats if args.repeats is not None else (3 if args.quick else 11)
    if rounds < 1:
        parser.error("--repeats must be at least 1")
    return Settings(
        dtype=args.dtype,
        rounds=rounds,
        block_seconds=0.01 if args.quick else 0.04,
        warmup_seconds=0.02 if args.quick else 0.2,
        pause_seconds=max(0.0, args.pause),
        predict_rows=2_000 if args.quick else 10_000,
        use_torch=not args.no_torch,
        use_compile=not (args.no_torch or args.no_compile),
        use_jax=not args.no_jax,
        gemm=args.gemm,
        small_flops=args.small_flops,
    )


# --- measuring -----------------------------------------------------------------------------


def warm_up(call, least_seconds):
    """Call at least 3 times and for least_seconds; returns the median call time
    in seconds, the first call left out."""
    call()
    times = []
    started = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - started < least_seconds:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Timings:
    """Seconds per call of each contender, one figure per round."""

    def __init__(self, per_round):
        self.per_round = per_round  # name -> [seconds per call in round r]

    def __contains__(self, name):
        return name in self.per_round

    def seconds(self, name):
        """Median over rounds of the seconds per call."""
        return statistics.median(self.per_round[name])

    def spread(self, name):
        """Slowest round over fastest round: near 1 when the machine was steady."""
        return max(self.per_round[name]) / min(self.per_round[name])

    def ratio(self, numerator, denominator):
        """Median over rounds of numerator's time / denominator's time; None when
        either was not measured."""
        if numerator not in self.per_round or denominator not in self.per_round:
            return None
        pairs = zip(self.per_round[numerator], self.per_round[denominator])
        return statistics.median(a / b for a, b in pairs)


def prepare(call):
    """Run a contender's untimed set-up (workloads.with_gemm's provider switch)."""
    before = getattr(call, "before", None)
    if before is not None:
        before()


def interleaved(contenders, settings):
    """Time zero-argument callables against each other in rounds (see the module
    docstring) and return their Timings."""
    names = list(contenders)
    block = {}
    for name in names:
        prepare(contenders[name])
        single = warm_up(contenders[name], settings.warmup_seconds)
        block[name] = max(1, round(settings.block_seconds / single))
    per_round = {name: [] for name in names}
    for r in range(settings.rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            call, k = contenders[name], block[name]
            time.sleep(settings.pause_seconds)
            prepare(call)
            if k > 1:
                call()  # wakes the BLAS workers up outside the timed block
            t0 = time.perf_counter()
            for _ in range(k):
                call()
            per_round[name].append((time.perf_counter() - t0) / k)
    return Timings(per_round)


# --- the three measurements ----------------------------------------------------------------


def peer_classes(settings):
    """{peer name: its workloads class} for the peers installed and not left out:
    "torch" (eager), "torch.compile" and "jax", in that order. torch runs with as
    many threads as the BLAS."""
    peers = {}
    torch = workloads.import_torch() if settings.use_torch else None
    if torch is not None:
        torch.set_num_threads(workloads.cpu_threads())
        peers["torch"] = workloads.TorchMLP
        if settings.use_compile:
            peers["torch.compile"] = workloads.CompiledTorchMLP
    if settings.use_jax and workloads.import_jax() is not None:
        peers["jax"] = workloads.JaxMLP
    return peers


PEER_LABELS = {"torch": "PyTorch", "torch.compile": "torch.compile", "jax": "JAX"}


def measure_steps(settings, peers):
    """{config name: Timings of cython, numpy, floor (and each peer's) steps}."""
    results = {}
    for config in CONFIGS.values():
        batches = workloads.make_batches(config, settings.dtype)
        cython_model = workloads.make_model(config, "cython", settings.dtype)
        numpy_model = workloads.make_model(config, "numpy", settings.dtype)
        contenders = {
            "cython": workloads.fastbp_step(cython_model, batches),
            "numpy": workloads.fastbp_step(numpy_model, batches),
            "floor": workloads.gemm_floor(cython_model, batches),
        }
        for name, cls in peers.items():
            contenders[name] = cls(numpy_model).step(batches)
        check_same_loss(config, contenders)
        results[config.name] = interleaved(contenders, settings)
    return results


def check_same_loss(config, step_contenders):
    """Stop if the contenders' steps disagree on the loss: then they would not be
    doing the same work. Runs the cython step first so the floor's workspaces
    hold a real step's values."""
    losses = {}
    for name, step in step_contenders.items():
        if name == "floor":
            continue
        result = step()
        losses[name] = float(result[0] if isinstance(result, tuple) else result)
    reference = losses["numpy"]
    for name, loss in losses.items():
        if not np.isclose(loss, reference, rtol=1e-4):
            sys.exit(
                f"{config.name}: {name} step gives loss {loss}, NumPy gives {reference}; "
                "the contenders do not compute the same step"
            )


def measure_predict(settings, peers):
    """{config name: Timings of cython, numpy (and each peer) over predict_rows rows}."""
    results = {}
    for config in CONFIGS.values():
        X = workloads.predict_data(config, settings.dtype, settings.predict_rows)
        numpy_model = workloads.make_model(config, "numpy", settings.dtype)
        contenders = {
            "cython": workloads.fastbp_predict(
                workloads.make_model(config, "cython", settings.dtype), X
            ),
            "numpy": workloads.fastbp_predict(numpy_model, X),
        }
        for name, cls in peers.items():
            contenders[name] = cls(numpy_model).predict(X)
        results[config.name] = interleaved(contenders, settings)
    return results


def measure_epoch(settings, peers):
    """Timings of one epoch of the tiny config for cython, numpy (and each peer)."""
    config = CONFIGS[EPOCH_CONFIG]
    X, y, order = workloads.epoch_data(config, settings.dtype, EPOCH_SAMPLES)
    contenders = {}
    for backend in ("cython", "numpy"):
        model = workloads.make_model(config, backend, settings.dtype)
        contenders[backend] = workloads.fastbp_epoch(model, X, y, order, config.batch_size)
    for name, cls in peers.items():
        model = workloads.make_model(config, "numpy", settings.dtype)
        contenders[name] = cls(model).epoch(X, y, order, config.batch_size)
    return interleaved(contenders, settings)


def measure_layers(settings):
    """{layer model name: Timings of cython and numpy steps} on the small config."""
    config = CONFIGS[workloads.LAYER_CONFIG]
    batches = workloads.make_batches(config, settings.dtype)
    results = {}
    for name in workloads.LAYER_MODELS:
        contenders = {
            backend: workloads.fastbp_step(
                workloads.make_layer_model(name, backend, settings.dtype), batches
            )
            for backend in ("cython", "numpy")
        }
        check_same_loss(config, contenders)
        results[name] = interleaved(contenders, settings)
    return results


# --- printing --------------------------------------------------------------------------------


def fmt_ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def fmt_number(value, digits=1):
    return "-" if value is None else f"{value:,.{digits}f}"


def print_table(title, header, rows):
    """A title, then columns right-aligned to their widest cell (the first left)."""
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]

    def line(cells):
        first = str(cells[0]).ljust(widths[0])
        return "  ".join([first] + [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:])])

    print(f"\n{title}")
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def print_header(settings, peers, peak):
    provider = fastbp.gemm.current()
    cython_blas = f"{provider.name} ({provider.version})"
    print(
        f"fastbp {fastbp.__version__} benchmark report: dtype {settings.dtype}, "
        f"{settings.rounds} rounds, pause {settings.pause_seconds:g} s, "
        f"block ~{settings.block_seconds * 1e3:g} ms"
    )
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, "
        f"{workloads.cpu_threads()} BLAS threads; Cython GEMMs go through {cython_blas}"
    )
    small = fastbp.gemm.small_flops()
    print(
        f"GEMMs of at most {small:.3g} flops run in fastbp's own loops (the small path)"
        if small
        else "small path off: every GEMM goes to the provider"
    )
    if "torch" in peers:
        torch = workloads.import_torch()
        print(f"torch {torch.__version__}: {torch.get_num_threads()} threads")
    if "jax" in peers:
        jax = workloads.import_jax()
        print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    missing = [PEER_LABELS[name] for name in PEER_LABELS if name not in peers]
    if missing:
        print("not measured (absent or left out): " + ", ".join(missing))
    print(
        f"GEMM peak ({settings.dtype}, 1024^3, the provider's best of 5): {peak / 1e9:.1f} GFLOP/s"
    )
    if hasattr(os, "getloadavg"):
        print(
            f"load average before starting: {os.getloadavg()[0]:.2f} "
            f"(on {workloads.cpu_threads()} CPUs; other work makes the figures noisier)"
        )
    print("figures: medians over rounds; ratios: medians of per-round ratios")


def step_table(steps, peers, peak):
    """Title, header and rows of the training-step table."""
    rows = []
    for config in CONFIGS.values():
        t = steps[config.name]
        names = ("cython", "numpy", "floor", *peers)
        us = [fmt_number(t.seconds(name) * 1e6) for name in names]
        peak_share = workloads.step_flops(config) / t.seconds("cython") / peak
        rows.append(
            [
                config.name,
                config.shape_label,
                config.batch_size,
                *us,
                f"{100 * peak_share:.0f} %",
                fmt_ratio(t.ratio("numpy", "cython")),
                fmt_ratio(t.ratio("cython", "floor")),
                *[fmt_ratio(t.ratio(name, "cython")) for name in peers],
            ]
        )
    labels = [PEER_LABELS[name] for name in peers]
    return (
        "Training step: µs per step (lower is faster); NumPy/Cython and peer/Cython "
        "above 1 mean Cython is faster; Cython/floor is the step over its GEMMs alone; "
        "% peak is the step's GEMM FLOPs over its time, against the GEMM peak",
        [
            "config",
            "layers",
            "batch",
            "Cython",
            "NumPy",
            "floor",
            *labels,
            "% peak",
            "NumPy/Cython",
            "Cython/floor",
            *[f"{label}/Cython" for label in labels],
        ],
        rows,
    )


def layers_table(layer_steps):
    """Title, header and rows of the layer-types table."""
    config = CONFIGS[workloads.LAYER_CONFIG]
    rows = [
        [
            name,
            fmt_number(t.seconds("cython") * 1e6),
            fmt_number(t.seconds("numpy") * 1e6),
            fmt_ratio(t.ratio("numpy", "cython")),
        ]
        for name, t in layer_steps.items()
    ]
    return (
        f"Layer types: µs per training step on the {config.name} config's shapes "
        f"({config.shape_label}, batch {config.batch_size})",
        ["model", "Cython", "NumPy", "NumPy/Cython"],
        rows,
    )


def predict_table(predictions, n_rows, peers):
    """Title, header and rows of the predict table."""
    rows = []
    for config in CONFIGS.values():
        t = predictions[config.name]
        per_second = [
            fmt_number(n_rows / t.seconds(name), 0) for name in ("cython", "numpy", *peers)
        ]
        rows.append(
            [
                config.name,
                config.shape_label,
                n_rows,
                *per_second,
                fmt_ratio(t.ratio("numpy", "cython")),
                *[fmt_ratio(t.ratio(name, "cython")) for name in peers],
            ]
        )
    labels = [PEER_LABELS[name] for name in peers]
    return (
        f"Predict: rows/s over {n_rows:,} rows (higher is faster); ratios are time over "
        "Cython's time",
        [
            "config",
            "layers",
            "rows",
            "Cython",
            "NumPy",
            *labels,
            "NumPy/Cython",
            *[f"{label}/Cython" for label in labels],
        ],
        rows,
    )


def epoch_table(epoch, peers):
    """Title, header and the one row of the epoch table."""
    config = CONFIGS[EPOCH_CONFIG]
    ms = [fmt_number(epoch.seconds(name) * 1e3, 2) for name in ("cython", "numpy", *peers)]
    row = [
        config.name,
        config.shape_label,
        f"{EPOCH_SAMPLES} / {config.batch_size}",
        *ms,
        fmt_ratio(epoch.ratio("numpy", "cython")),
        *[fmt_ratio(epoch.ratio(name, "cython")) for name in peers],
    ]
    labels = [PEER_LABELS[name] for name in peers]
    return (
        "One epoch: ms per epoch; ratios are time over Cython's time",
        [
            "config",
            "layers",
            "samples / batch",
            "Cython",
            "NumPy",
            *labels,
            "NumPy/Cython",
            *[f"{label}/Cython" for label in labels],
        ],
        [row],
    )


# --- targets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A bound on a measured ratio: measured >= bound (at_least) or <= bound.

    gemm_only : for step speed-ups, NumPy's time over the GEMM floor's, the
        ratio a step that cost only its GEMMs would reach (None elsewhere).
    """

    what: str
    measured: float | None
    bound: float
    at_least: bool
    gemm_only: float | None = None
    unit: str = "x"  # how measured and bound print: "x" (a ratio), "%" or "µs"

    def show(self, value):
        if value is None:
            return "-"
        if self.unit == "%":
            return f"{100 * value:.0f} %"
        if self.unit == "µs":
            return f"{value:.1f} µs"
        return f"{value:.2f}x"

    @property
    def verdict(self):
        if self.measured is None:
            return "not measured"
        met = self.measured >= self.bound if self.at_least else self.measured <= self.bound
        return "met" if met else "NOT MET"


STEP_SPEEDUP_TARGETS = {"tiny": 14.0, "small": 1.7, "medium": 1.27, "large": 1.06}
FLOOR_OVERHEAD_TARGET = 1.10  # small, medium, large
EPOCH_SPEEDUP_TARGET = 12.0
PREDICT_SPEEDUP_TARGET = 1.0  # never slower than NumPy
PEER_TARGET = 1.1  # step, epoch and predict at least this much faster than every peer
PEAK_SHARE_TARGETS = {"medium": 0.65, "large": 0.75}  # share of the GEMM peak a step reaches
TINY_STEP_SECONDS = 4e-6


def peer_targets(steps, predictions, epoch, peers):
    """peer time / Cython time >= PEER_TARGET for every peer and measure."""
    found = []
    for peer in peers:
        label = PEER_LABELS[peer]
        for name in CONFIGS:
            found.append(
                Target(
                    f"step {name}: {label}/Cython",
                    steps[name].ratio(peer, "cython"),
                    PEER_TARGET,
                    True,
                )
            )
            found.append(
                Target(
                    f"predict {name}: {label}/Cython",
                    predictions[name].ratio(peer, "cython"),
                    PEER_TARGET,
                    True,
                )
            )
        found.append(
            Target(
                f"epoch {EPOCH_CONFIG}: {label}/Cython",
                epoch.ratio(peer, "cython"),
                PEER_TARGET,
                True,
            )
        )
    return found


def targets(steps, predictions, epoch, peers, peak):
    """The performance targets as Targets, with what was measured."""
    found = []
    for name, share in PEAK_SHARE_TARGETS.items():
        config = CONFIGS[name]
        measured = workloads.step_flops(config) / steps[name].seconds("cython") / peak
        found.append(Target(f"step {name}: share of GEMM peak", measured, share, True, unit="%"))
    found.append(
        Target(
            "step tiny: µs",
            steps["tiny"].seconds("cython") * 1e6,
            TINY_STEP_SECONDS * 1e6,
            False,
            unit="µs",
        )
    )
    for name, bound in STEP_SPEEDUP_TARGETS.items():
        found.append(
            Target(
                f"step {name}: NumPy/Cython",
                steps[name].ratio("numpy", "cython"),
                bound,
                True,
                gemm_only=steps[name].ratio("numpy", "floor"),
            )
        )
    for name in ("small", "medium", "large"):
        found.append(
            Target(
                f"step {name}: Cython/GEMM floor",
                steps[name].ratio("cython", "floor"),
                FLOOR_OVERHEAD_TARGET,
                False,
            )
        )
    found.append(
        Target(
            f"epoch {EPOCH_CONFIG}: NumPy/Cython",
            epoch.ratio("numpy", "cython"),
            EPOCH_SPEEDUP_TARGET,
            True,
        )
    )
    for name in CONFIGS:
        found.append(
            Target(
                f"predict {name}: NumPy/Cython",
                predictions[name].ratio("numpy", "cython"),
                PREDICT_SPEEDUP_TARGET,
                True,
            )
        )
    return found + peer_targets(steps, predictions, epoch, peers)


UNSTEADY_SPREAD = 1.5


def print_unsteady(timings):
    """Name the figures whose rounds varied more than UNSTEADY_SPREAD."""
    unsteady = [
        f"{what} {name} ({t.spread(name):.1f}x)"
        for what, t in timings.items()
        for name in t.per_round
        if t.spread(name) > UNSTEADY_SPREAD
    ]
    if unsteady:
        print(
            f"\nrounds spanning more than {UNSTEADY_SPREAD}x (slowest/fastest), "
            "treat with care or rerun: " + ", ".join(unsteady)
        )
    else:
        print(f"\nevery figure's rounds stayed within {UNSTEADY_SPREAD}x of each other")


def targets_table(found, dtype):
    """Title, header and rows of the targets, each marked met or not."""
    note = "" if dtype == "float32" else " (they were set for float32)"
    rows = [
        [
            t.what,
            (">= " if t.at_least else "<= ") + t.show(t.bound),
            t.show(t.measured),
            t.verdict,
            fmt_ratio(t.gemm_only),
        ]
        for t in found
    ]
    return (
        f"Targets{note}; 'GEMMs only' is NumPy/floor, the speed-up of a step that cost "
        "no more than its GEMMs",
        ["target", "wanted", "measured", "verdict", "GEMMs only"],
        rows,
    )


def main(argv=None):
    settings = parse_settings(argv)
    reason = workloads.cython_unavailable_reason()
    if reason:
        sys.exit(f"cannot compare: {reason}")
    if settings.gemm is not None:
        fastbp.gemm.use(settings.gemm)
    if settings.small_flops is not None:
        fastbp.gemm.set_small_flops(settings.small_flops)
    peers = peer_classes(settings)
    peak = workloads.gemm_peak(np.dtype(settings.dtype))
    print_header(settings, peers, peak)
    started = time.perf_counter()

    steps = measure_steps(settings, peers)
    print_table(*step_table(steps, peers, peak))
    predictions = measure_predict(settings, peers)
    print_table(*predict_table(predictions, settings.predict_rows, peers))
    epoch = measure_epoch(settings, peers)
    print_table(*epoch_table(epoch, peers))
    layer_steps = measure_layers(settings)
    print_table(*layers_table(layer_steps))
    print_table(*targets_table(targets(steps, predictions, epoch, peers, peak), settings.dtype))

    print_unsteady(
        {
            **{f"step {name}": t for name, t in steps.items()},
            **{f"predict {name}": t for name, t in predictions.items()},
            f"epoch {EPOCH_CONFIG}": epoch,
            **{f"layers {name}": t for name, t in layer_steps.items()},
        }
    )
    load = f", load average now {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""
    print(f"\ntotal {time.perf_counter() - started:.0f} s{load}")


if __name__ == "__main__":
    main()
