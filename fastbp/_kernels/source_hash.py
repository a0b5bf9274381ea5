"""Fingerprint of the compiled kernels' sources, to detect a stale build.

setup.py compiles the fingerprint into the engine; at import, fastbp recomputes
it when the sources are present (a source tree) and refuses a build that no
longer matches them.
"""

import hashlib
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def source_files():
    """The kernel sources: fastbp/_kernels/*.pyx, *.pxd and csrc/*; [] outside a source tree."""
    csrc = os.path.join(ROOT, "csrc")
    if not os.path.isdir(csrc):
        return []
    files = [os.path.join(HERE, f) for f in os.listdir(HERE) if f.endswith((".pyx", ".pxd"))]
    files += [os.path.join(csrc, f) for f in os.listdir(csrc) if f.endswith((".c", ".h"))]
    return sorted(files)


def fingerprint():
    """sha256 over the kernel sources (names and contents), or None without them."""
    files = source_files()
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(os.path.relpath(path, ROOT).encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]
