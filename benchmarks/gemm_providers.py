"""The compiled engine on each GEMM provider (fastbp.gemm), in one process.

    python -m benchmarks.gemm_providers [--dtype float32|float64] [--quick]
                                        [--repeats N] [--threads N]

For each config of workloads.CONFIGS: the training step, the step's GEMMs alone
(the floor) and predict over 10 000 rows (2 000 with --quick), and one epoch of the tiny config, on
every provider that loads here ("scipy" always, "mkl" with fastbp[mkl]), and MKL
once more as "mkl-all" with its thread policy off (fastbp.gemm.set_serial_flops(0):
every GEMM on all the threads, as before the policy); then each contender's time
over SciPy's (below 1: faster than SciPy's BLAS). The providers
are timed in interleaved rounds (benchmarks/report.py's method): each contender
switches the provider before its timed block, outside the timing.

--threads N limits every BLAS to N threads (fastbp.threads.limit), to tell the
library's own speed from its threading.
"""

import argparse
import contextlib
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)  # run as a script: measure this checkout's fastbp

from benchmarks import report, workloads  # noqa: E402
from benchmarks.workloads import CONFIGS  # noqa: E402
from fastbp import gemm, threads  # noqa: E402

# contender -> (provider, thread policy threshold or None for the provider's default)
NO_POLICY = "mkl-all"
CONTENDERS = {"scipy": ("scipy", None), "mkl": ("mkl", None), NO_POLICY: ("mkl", 0.0)}


def on_provider(label, call):
    """call, marked to run on contender `label`'s provider and thread policy
    (report.prepare switches to them)."""
    name, flops = CONTENDERS[label]

    def switch():
        gemm.use(name)
        if name in gemm.SERIAL_FLOPS:
            gemm.set_serial_flops(gemm.SERIAL_FLOPS[name] if flops is None else flops)

    def run():
        return call()

    run.before = switch
    return run


def contender(what, config, settings, batches, X):
    """A fresh compiled model's zero-argument call for one measure."""
    model = workloads.make_model(config, "cython", settings.dtype)
    if what == "step":
        return workloads.fastbp_step(model, batches)
    if what == "floor":
        workloads.fastbp_step(model, batches)()  # workspaces hold a real step's values
        return workloads.gemm_floor(model, batches)
    return workloads.fastbp_predict(model, X)


def measure(settings, providers):
    """{(what, config name): Timings with one contender per provider}."""
    results = {}
    for config in CONFIGS.values():
        batches = workloads.make_batches(config, settings.dtype)
        X = workloads.predict_data(config, settings.dtype, settings.predict_rows)
        for what in ("step", "floor", "predict"):
            contenders = {
                name: on_provider(name, contender(what, config, settings, batches, X))
                for name in providers
            }
            results[what, config.name] = report.interleaved(contenders, settings)
    config = CONFIGS[report.EPOCH_CONFIG]
    X, y, order = workloads.epoch_data(config, settings.dtype, report.EPOCH_SAMPLES)
    contenders = {}
    for name in providers:
        model = workloads.make_model(config, "cython", settings.dtype)
        epoch = workloads.fastbp_epoch(model, X, y, order, config.batch_size)
        contenders[name] = on_provider(name, epoch)
    results["epoch", config.name] = report.interleaved(contenders, settings)
    return results


def table(results, providers):
    header = ["measure", "config"] + [f"{name} µs" for name in providers]
    header += [f"{name}/scipy" for name in providers if name != "scipy"]
    rows = []
    for (what, config), timings in results.items():
        row = [what, config] + [report.fmt_number(timings.seconds(n) * 1e6) for n in providers]
        row += [report.fmt_ratio(timings.ratio(n, "scipy")) for n in providers if n != "scipy"]
        rows.append(row)
    return "GEMM providers: time per call (median over rounds)", header, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="limit BLAS threads")
    args = parser.parse_args(argv)
    settings = report.parse_settings(
        ["--dtype", args.dtype]
        + (["--quick"] if args.quick else [])
        + ([] if args.repeats is None else ["--repeats", str(args.repeats)])
    )
    reason = workloads.cython_unavailable_reason()
    if reason:
        sys.exit(f"cannot compare: {reason}")
    before = gemm.current()
    available = gemm.available()
    providers = [label for label, (name, _) in CONTENDERS.items() if name in available]
    for name in available:
        print(f"{name}: {gemm.use(name).version}")
    if "mkl" in available:
        print(f"mkl thread policy: one thread below {gemm.SERIAL_FLOPS['mkl']:.3g} flops")
    print(f"BLAS threads: {args.threads or workloads.cpu_threads()}, dtype {settings.dtype}")
    limit = threads.limit(args.threads) if args.threads else contextlib.nullcontext()
    try:
        with limit:
            results = measure(settings, providers)
    finally:
        for name, flops in gemm.SERIAL_FLOPS.items():
            if name in available:
                gemm.use(name)
                gemm.set_serial_flops(flops)
        gemm.use(before.name)
    report.print_table(*table(results, providers))
    return results


if __name__ == "__main__":
    main()
