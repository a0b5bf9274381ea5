"""The documentation stays true: the docstring examples run, and every
`docs/design.md §n` reference names a section that exists."""

import doctest
import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"
# the modules whose public entry points carry examples
DOCTEST_MODULES = ["fastbp.model", "fastbp.io", "fastbp.gradcheck"]
# where references may be written
SEARCHED = ["fastbp", "tests", "benchmarks", "scripts", "examples", "csrc", "docs"]
SUFFIXES = {".py", ".pyx", ".pxd", ".h", ".c", ".md", ".sh"}
REFERENCE = re.compile(r"docs/design\.md §(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#{2,}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_docstring_examples_run(name):
    # import_module: fastbp.gradcheck the attribute is the function, not the module
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {name}'s examples failed"


def design_sections():
    return set(HEADING.findall(DESIGN.read_text(encoding="utf-8")))


def references():
    """(file, line number, section) for every docs/design.md §n in the tree."""
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
    for folder in SEARCHED:
        files += [p for p in sorted((ROOT / folder).rglob("*")) if p.suffix in SUFFIXES]
    found = []
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            found += [(path.relative_to(ROOT), number, s) for s in REFERENCE.findall(line)]
    return found


def test_design_has_its_sections():
    assert {"1", "2", "3", "4", "5"} <= design_sections()


def test_every_design_reference_names_a_section():
    found = references()
    assert found, "no docs/design.md §n reference found; is the pattern right?"
    sections = design_sections()
    missing = [f"{path}:{line}: §{s}" for path, line, s in found if s not in sections]
    assert not missing, "references to sections docs/design.md does not have: " + ", ".join(missing)


def test_no_reference_to_the_old_design_file():
    stale = []
    for path in [ROOT / "README.md", *sorted((ROOT / "fastbp").rglob("*.py"))]:
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if re.search(r"(?<![\w/])DESIGN\.md", text):
                stale.append(f"{path.relative_to(ROOT)}:{number}")
    assert not stale, "these still cite DESIGN.md; cite docs/design.md §n: " + ", ".join(stale)
