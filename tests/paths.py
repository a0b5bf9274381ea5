"""Where the tests find things.

SOURCE_ROOT is the clone the tests live in: the files they read (README.md, docs/,
examples/, setup.py, csrc/) come from there. IMPORT_ROOT is the directory the fastbp
under test is imported from: the clone itself when the tests run from it, the
site-packages of an installed wheel when they run with FASTBP_TEST_INSTALLED=1 (see
tests/conftest.py). A child Python that must run the same fastbp as the tests starts
in IMPORT_ROOT, with IMPORT_ROOT on its PYTHONPATH (child_env).
"""

import os
from pathlib import Path

import fastbp

SOURCE_ROOT = Path(__file__).resolve().parents[1]
IMPORT_ROOT = Path(fastbp.__file__).resolve().parents[1]


def child_env(**extra: str) -> dict[str, str]:
    """os.environ with IMPORT_ROOT first on PYTHONPATH, plus the extra variables."""
    path = [str(IMPORT_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), **extra}


def is_inside(path: Path, folder: Path) -> bool:
    """Whether path (resolved) lies in folder."""
    return path.resolve().is_relative_to(folder.resolve())
