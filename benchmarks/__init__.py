"""fastbp's benchmarks: pytest-benchmark suites and a one-process report.

A package so that its test modules do not clash by name with those in tests/.
"""
