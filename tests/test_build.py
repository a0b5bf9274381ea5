"""Without a usable compiled extension, fastbp still imports and the NumPy backend runs."""

import importlib.util
import platform
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

from fastbp import backends
from fastbp._kernels import source_hash

ROOT = Path(__file__).resolve().parent.parent


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


def _setup_module():
    spec = importlib.util.spec_from_file_location("fastbp_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not __main__: defines the helpers, builds nothing
    return module


def _clones_macro(flags):
    """What FBP_SIMD_CLONES expands to in csrc/fbp_math.h under the given flags."""
    probe = '#include "fbp_math.h"\nclones: FBP_SIMD_CLONES\n'
    out = subprocess.run(
        [sysconfig.get_config_var("CC").split()[0], *flags, "-I", str(ROOT / "csrc"), "-E", "-"],
        input=probe,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return next(line for line in out.splitlines() if line.startswith("clones:"))[7:].strip()


def test_fastbp_native_compiles_one_native_copy_instead_of_load_time_clones():
    setup = _setup_module()
    default, native = setup.compile_flags({}), setup.compile_flags({"FASTBP_NATIVE": "1"})
    assert "-march=native" not in default
    assert "-march=native" in native
    # the native build must not keep the clones: their resolver would pick the AVX2 copy
    assert _clones_macro(native) == ""
    if platform.machine() in ("x86_64", "AMD64") and platform.libc_ver()[0] == "glibc":
        assert "target_clones" in _clones_macro(default)
