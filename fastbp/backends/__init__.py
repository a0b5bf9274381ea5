"""Backends execute a plan. Both offer the same methods:

forward(X) -> A_last; activations() -> every layer's A from that forward pass;
backward(dout, need_dX) -> dX; step(X, y, loss, optimizer, update, lr) ->
(loss, n_correct); epoch(X, y, order, batch_size, loss, optimizer, lr) -> (sum of
batch_rows * batch_loss, n_correct, n_seen); predict(X) -> outputs;
loss_sum(X, y, loss) -> (summed loss, n_correct).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import cast

from fastbp import activations, losses, optimizers, plan
from fastbp._kernels import source_hash
from fastbp.backends.numpy_backend import NumpyBackend
from fastbp.backends.protocol import BackendFactory
from fastbp.validation import check_option

BUILD_HINT = (
    "build them from the source tree with `pip install -e .` (or "
    "`python setup.py build_ext --inplace`), or pass backend='numpy'"
)
HEADER = "csrc/fbp_kernels.h"

# group of codes -> (the file that keeps them, a function returning Python's {name: code}),
# read at each call so that the registries are compared as they are now.
PYTHON_CODES: dict[str, tuple[str, Callable[[], Mapping[str, int]]]] = {
    "activation": (
        "fastbp/activations.py",
        lambda: {name: spec.code for name, spec in activations.ACTIVATIONS.items()},
    ),
    "loss": ("fastbp/losses.py", lambda: losses.CODES),
    "optimizer": ("fastbp/optimizers.py", lambda: optimizers.KINDS),
    "node": ("fastbp/plan.py", lambda: plan.KINDS),
}

# C struct the engine fills from dicts by field name -> a function returning
# {what Python passes: its keys}
PYTHON_FIELDS: dict[str, Callable[[], dict[str, list[str]]]] = {
    "fbp_hyper": lambda: {
        f"{cls.__name__}.hyper() in fastbp/optimizers.py": list(cls().hyper())
        for cls in optimizers.OPTIMIZERS.values()
    },
    "Traits": lambda: {"NodeTraits in fastbp/plan.py": list(plan.NodeTraits().as_dict())},
}


def _group_mismatches(
    group: str, where: str, python: Mapping[str, int], c: Mapping[str, int], prefix: str
) -> list[str]:
    """Messages for the names of one group whose codes differ, or that only one side has."""
    problems = []
    for name in sorted(set(python) | set(c)):
        c_name = prefix + name.upper()
        if name not in c:
            problems.append(
                f"{group} {name!r} is {python[name]} in {where} but {HEADER} has no {c_name}"
            )
        elif name not in python:
            problems.append(
                f"{c_name} is {c[name]} in {HEADER} but {where} has no {group} {name!r}"
            )
        elif python[name] != c[name]:
            problems.append(
                f"{group} {name!r} is {python[name]} in {where} but {c_name} is "
                f"{c[name]} in {HEADER}"
            )
    return problems


def code_mismatches(
    c_codes: Mapping[str, Mapping[str, int]], prefixes: Mapping[str, str]
) -> list[str]:
    """Every disagreement between the compiled codes and the Python registries, as
    messages ([] when they agree). c_codes: {group: {name: code}} and prefixes:
    {group: C prefix}, as fastbp._kernels.engine exports them (CODES, PREFIXES)."""
    problems = [
        f"{HEADER} has codes for {group!r}, which no Python registry checks"
        for group in sorted(set(c_codes) - set(PYTHON_CODES))
    ]
    for group, (where, python) in PYTHON_CODES.items():
        if group not in c_codes:
            problems.append(f"{where} has {group} codes but {HEADER} declares none")
            continue
        problems += _group_mismatches(group, where, python(), c_codes[group], prefixes[group])
    return problems


def field_mismatches(c_fields: Mapping[str, Sequence[str]]) -> list[str]:
    """Every dict Python hands the engine whose keys are not exactly the fields of
    the C struct it fills, as messages ([] when all agree). c_fields: {struct: field
    names}, as fastbp._kernels.engine exports them (STRUCT_FIELDS)."""
    problems = []
    for struct, python in PYTHON_FIELDS.items():
        fields = c_fields.get(struct, ())
        for source, keys in python().items():
            problems += [
                f"{source} has no {name!r}, which {struct} has"
                for name in fields
                if name not in keys
            ]
            problems += [
                f"{source} has {name!r}, which {struct} has not"
                for name in keys
                if name not in fields
            ]
    return problems


def _load_cython() -> tuple[BackendFactory, None] | tuple[None, str]:
    """The CythonBackend class, or the reason it cannot be used."""
    try:
        from fastbp._kernels import engine
    except ImportError as exc:
        return None, f"the compiled kernels are not built ({exc}); {BUILD_HINT}"
    current = source_hash.fingerprint()
    if current is not None and current != engine.SOURCE_HASH:
        return None, (
            "the compiled kernels are older than their sources (built from "
            f"{engine.SOURCE_HASH}, sources are now {current}); rebuild them: {BUILD_HINT}"
        )
    problems = code_mismatches(engine.CODES, engine.PREFIXES) + field_mismatches(
        engine.STRUCT_FIELDS
    )
    if problems:
        return None, (
            "the compiled kernels and the Python side disagree: "
            + "; ".join(problems)
            + f"; make the two sides agree, then rebuild: {BUILD_HINT}"
        )
    from fastbp import gemm

    try:
        gemm.use_environment()
    except gemm.ProviderUnavailable as exc:
        return None, str(exc)
    from fastbp.backends.cython_backend import CythonBackend

    return CythonBackend, None


CythonBackend, CYTHON_UNAVAILABLE = _load_cython()

BACKENDS: dict[str, BackendFactory | None] = {"numpy": NumpyBackend, "cython": CythonBackend}


def get(name: str) -> BackendFactory:
    """The backend class for a name; a clear error if unknown or not built."""
    check_option("backend", name, tuple(BACKENDS))
    if BACKENDS[name] is None:
        raise RuntimeError(f"backend {name!r} is unavailable: {CYTHON_UNAVAILABLE}")
    return cast(BackendFactory, BACKENDS[name])  # not None: checked above


def available() -> list[str]:
    """Names of the backends usable in this installation."""
    return [name for name, cls in BACKENDS.items() if cls is not None]
