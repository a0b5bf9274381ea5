"""A smoke run of benchmarks/gemm_providers.py: every provider that loads is timed
on every measure, and the provider in use before is the one in use after."""

from benchmarks.conftest import skip_unless_available
from benchmarks.gemm_providers import main
from benchmarks.workloads import CONFIGS
from fastbp import gemm


def test_every_provider_is_timed_and_the_choice_restored(capsys):
    skip_unless_available("cython")
    before = gemm.current()
    results = main(["--quick", "--repeats", "1"])
    assert gemm.current() is before
    assert {config for _, config in results} == set(CONFIGS)
    for timings in results.values():
        for name in gemm.available():
            assert timings.seconds(name) > 0
    assert "GEMM providers" in capsys.readouterr().out
