"""Without a usable compiled extension, fastbp still imports and the NumPy backend runs."""

import subprocess
import sys
import textwrap

from fastbp import backends
from fastbp._kernels import source_hash


def run(code):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_missing_extension_leaves_numpy_backend_and_a_clear_message():
    result = run("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                compiled = name.split(".")[-1] in ("engine", "kernels")
                if name.startswith("fastbp._kernels.") and compiled:
                    raise ImportError("no compiled module " + name)
        sys.meta_path.insert(0, Block())
        import numpy as np, fastbp as fb
        assert fb.available_backends() == ["numpy"], fb.available_backends()
        m = fb.Sequential([fb.Dense(3, input_dim=2)], backend="numpy")
        m.fit(np.ones((4, 2)), np.ones((4, 3)), verbose=0)
        try:
            fb.Sequential([fb.Dense(3, input_dim=2)], backend="cython")
        except RuntimeError as exc:
            print(exc)
    """)
    assert result.returncode == 0, result.stderr
    assert "not built" in result.stdout and "pip install -e ." in result.stdout


def test_stale_build_is_refused(monkeypatch):
    monkeypatch.setattr(source_hash, "fingerprint", lambda: "0000000000000000")
    cls, reason = backends._load_cython()
    assert cls is None and "older than their sources" in reason and "pip install -e ." in reason


def test_fresh_build_matches_its_sources():
    from fastbp._kernels import engine

    assert source_hash.fingerprint() in (None, engine.SOURCE_HASH)
