"""The build: without a usable compiled extension fastbp still imports and the NumPy
backend runs; setup.py's flags; what the published wheel and sdist hold; the guard
that makes an installed-package run test the installed package."""

import importlib.util
import os
import platform
import re
import struct
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from fastbp import backends
from fastbp._kernels import source_hash

ROOT = Path(__file__).resolve().parent.parent
CC = sysconfig.get_config_var("CC")  # None on Windows
needs_cc = pytest.mark.skipif(not CC, reason="no C compiler in sysconfig (Windows)")
needs_elf_cc = pytest.mark.skipif(
    not (CC and sys.platform.startswith("linux")),
    reason="needs a C compiler that writes ELF objects (Linux)",
)


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
        [CC.split()[0], *flags, "-I", str(ROOT / "csrc"), "-E", "-"],
        input=probe,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return next(line for line in out.splitlines() if line.startswith("clones:"))[7:].strip()


@needs_cc
def test_fastbp_native_compiles_one_native_copy_instead_of_load_time_clones():
    setup = _setup_module()
    default, native = setup.compile_flags({}), setup.compile_flags({"FASTBP_NATIVE": "1"})
    assert "-march=native" not in default
    assert "-march=native" in native
    # the native build must not keep the clones: their resolver would pick the AVX2 copy
    assert _clones_macro(native) == ""
    if platform.machine() in ("x86_64", "AMD64") and platform.libc_ver()[0] == "glibc":
        assert "target_clones" in _clones_macro(default)


# --- the published artefacts ----------------------------------------------------------
# .ci/run builds the sdist and the wheel (`python -m build`) and points these variables at
# them; the checks below read those files (no build, no network here).
WHEEL_VARIABLE, SDIST_VARIABLE = "FASTBP_TEST_WHEEL", "FASTBP_TEST_SDIST"
KERNEL_NAMES = ["codes", "kernels", "engine"]  # setup.py's HEADER_MODULES + KERNEL_MODULES


def _artefact(variable, suffix):
    value = os.environ.get(variable)
    if not value:
        pytest.skip(f"set {variable} to a built fastbp{suffix} to check it (.ci/run does)")
    path = Path(value)
    assert path.is_file() and path.name.endswith(suffix), (
        f"{variable}={value!r} should name an existing fastbp{suffix} file"
    )
    return path


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """(member names, folder the wheel was extracted to) of $FASTBP_TEST_WHEEL."""
    path = _artefact(WHEEL_VARIABLE, ".whl")
    folder = tmp_path_factory.mktemp("wheel")
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
        return archive.namelist(), folder


@pytest.fixture(scope="session")
def sdist_names():
    """Member names of $FASTBP_TEST_SDIST, without its top folder."""
    with tarfile.open(_artefact(SDIST_VARIABLE, ".tar.gz")) as archive:
        return [name.partition("/")[2] for name in archive.getnames()]


def elf_section_names(data):
    """The section names of an ELF file's bytes (32 or 64 bits, either byte order)."""
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file: this check reads Linux builds' .so files only")
    wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
    if wide:
        shoff, shentsize, shnum, shstrndx = struct.unpack_from(order + "Q10xHHH", data, 0x28)
        header = order + "I4xQQQ"  # sh_name, (type), flags, addr, offset
    else:
        shoff, shentsize, shnum, shstrndx = struct.unpack_from(order + "I10xHHH", data, 0x20)
        header = order + "I4xIII"

    def section(index):
        name, _, _, offset = struct.unpack_from(header, data, shoff + index * shentsize)
        return name, offset

    strings = section(shstrndx)[1]
    names = []
    for index in range(shnum):
        start = strings + section(index)[0]
        names.append(data[start : data.index(b"\0", start)].decode("ascii"))
    return names


def _compiled_object(tmp_path, *flags):
    source = tmp_path / "probe.c"
    source.write_text("int fbp_probe(int x) { return 2 * x; }\n")
    target = tmp_path / f"probe{len(flags)}.o"
    compiler = CC.split()[0]
    subprocess.run([compiler, *flags, "-c", str(source), "-o", str(target)], check=True)
    return target.read_bytes()


@needs_elf_cc
def test_elf_section_names_see_debug_information_when_there_is_some(tmp_path):
    with_debug = elf_section_names(_compiled_object(tmp_path, "-g"))
    without = elf_section_names(_compiled_object(tmp_path, "-g", "-g0"))
    assert ".text" in with_debug and ".text" in without
    assert ".debug_info" in with_debug
    assert not [name for name in without if name.startswith(".debug")]


def test_elf_section_names_refuse_what_is_not_elf():
    with pytest.raises(ValueError, match="not an ELF file"):
        elf_section_names(b"MZ\x90\x00" + bytes(60))


def test_build_flags_drop_debug_information_for_every_gcc_or_clang_build():
    setup = _setup_module()
    for environ in ({}, {"FASTBP_NATIVE": "1"}):
        assert "-g0" in setup.compile_flags(environ, "gcc")


def test_msvc_gets_msvc_flags_and_no_native_build():
    setup = _setup_module()
    flags = setup.compile_flags({}, setup.compiler_family("msvc"))
    assert flags and all(flag.startswith("/") for flag in flags)
    assert setup.link_libraries("msvc") == []
    with pytest.raises(ValueError, match="FASTBP_NATIVE=1 is for gcc and clang"):
        setup.compile_flags({"FASTBP_NATIVE": "1"}, "msvc")


def test_unknown_compiler_type_is_refused_with_the_known_ones():
    setup = _setup_module()
    assert setup.compiler_family("unix") == setup.compiler_family("mingw32") == "gcc"
    with pytest.raises(ValueError, match=r"no flags for the compiler type 'bcpp'.*'msvc'"):
        setup.compiler_family("bcpp")


def test_wheel_holds_the_package_only(wheel):
    names, _ = wheel
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"fastbp"}
    sources = [n for n in names if n.endswith((".c", ".h", ".pyx", ".pxd", ".o", ".html"))]
    assert not sources, f"sources or build products in the wheel: {sources}"
    for required in ["fastbp/py.typed", "fastbp/data/digits.csv.gz"]:
        assert required in names
    assert "fastbp/data/DIGITS_LICENSE.txt" in names


def test_wheel_has_every_kernel_module_built_without_debug_information(wheel):
    names, folder = wheel
    for kernel in KERNEL_NAMES:
        built = [n for n in names if re.fullmatch(rf"fastbp/_kernels/{kernel}\..+\.(so|pyd)", n)]
        assert len(built) == 1, f"expected one compiled {kernel} module, found {built}"
        sections = elf_section_names((folder / built[0]).read_bytes())
        assert ".text" in sections
        debug = [name for name in sections if name.startswith(".debug")]
        assert not debug, f"{built[0]} carries debug information: {debug}"


def test_wheel_metadata_lists_the_test_extra(wheel):
    names, folder = wheel
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    requires = (folder / metadata).read_text(encoding="utf-8")
    for package in ["onnx", "onnxruntime", "pandas", "pytest"]:
        assert re.search(rf"^Requires-Dist: {package}\b.*extra == \"test\"", requires, re.M)


def test_sdist_carries_what_the_build_and_the_tests_need(sdist_names):
    names = set(sdist_names)
    needed = {"setup.py", "pyproject.toml", "README.md", "MANIFEST.in"}
    needed |= {f"fastbp/_kernels/{kernel}.pyx" for kernel in KERNEL_NAMES}
    needed |= {
        str(path.relative_to(ROOT))
        for folder in ["csrc", "fastbp/_kernels", "tests", "examples", "docs"]
        for path in (ROOT / folder).iterdir()
        if path.suffix in {".c", ".h", ".pyx", ".pxd", ".py", ".md"}
        and not (folder == "fastbp/_kernels" and path.suffix == ".c")
    }
    assert not needed - names, f"missing from the sdist: {sorted(needed - names)}"


def test_sdist_holds_no_build_products(sdist_names):
    products = [
        name
        for name in sdist_names
        if name.endswith((".so", ".pyd", ".o", ".html", ".pyc"))
        or (name.startswith("fastbp/") and name.endswith(".c"))
        or name.startswith(("build/", "dist/"))
    ]
    assert not products, f"build products in the sdist: {products}"


def _cibuildwheel_config():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["cibuildwheel"]


def test_release_wheels_are_never_built_for_the_builders_cpu():
    config = _cibuildwheel_config()
    tables = [config] + [config[p] for p in ("linux", "macos", "windows") if p in config]
    tables += config.get("overrides", [])
    environments = [table["environment"] for table in tables if "environment" in table]
    assert config["environment"] in environments  # the default every platform starts from
    for environment in environments:
        assert environment.get("FASTBP_NATIVE") == "0", environment
        assert environment.get("FASTBP_EXTRA_CFLAGS") == "", environment


def test_release_wheels_are_tested_as_installed():
    config = _cibuildwheel_config()
    assert config["test-environment"]["FASTBP_TEST_INSTALLED"] == "1"
    assert "--import-mode=append" in config["test-command"]
    assert "{project}/tests" in config["test-command"]
    assert config["test-extras"] == ["test"]


# --- the installed-package guard (tests/conftest.py) ----------------------------------


def _collect_with(variable_value):
    # cibuildwheel's test environment sets PYTHONSAFEPATH=1; this child runs as from the clone
    unset = ("FASTBP_TEST_INSTALLED", "PYTHONSAFEPATH")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    if variable_value is not None:
        env["FASTBP_TEST_INSTALLED"] = variable_value
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"]
        + ["tests/test_build.py"],
        cwd=ROOT,  # imports the clone's fastbp, as a run from the clone does
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_installed_mode_refuses_the_clone_fastbp():
    refused = _collect_with("1")
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR, refused.stdout + refused.stderr
    assert "imported from the clone" in refused.stderr and "--import-mode=append" in refused.stderr
    collected = _collect_with(None)
    assert collected.returncode == pytest.ExitCode.OK, collected.stdout + collected.stderr
    assert "test_installed_mode_refuses_the_clone_fastbp" in collected.stdout
