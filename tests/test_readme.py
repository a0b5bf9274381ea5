"""Every ```python block of README.md runs as written.

Blocks are grouped by their "## " section; a section's blocks run in order in one
namespace, in a fresh working directory (so files they write land there). A block
whose first line is `# requires: name[, name...]` is skipped when one of those
modules cannot be imported (optional extras such as torch); each such skip names the
missing module.
"""

import importlib.util
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
REQUIRES = re.compile(r"#\s*requires:\s*(.+)")


def sections():
    """{section title: [code of each python block, in order]}"""
    found: dict[str, list[str]] = {}
    title = "(top)"
    text = README.read_text(encoding="utf-8")
    for match in re.finditer(r"^## ([^\n]+)$|" + FENCE.pattern, text, re.MULTILINE | re.DOTALL):
        if match.group(1):
            title = match.group(1).strip()
        else:
            found.setdefault(title, []).append(match.group(2))
    return found


SECTIONS = sections()


def test_readme_has_examples():
    assert sum(len(blocks) for blocks in SECTIONS.values()) >= 1


@pytest.mark.parametrize("title", sorted(SECTIONS))
def test_readme_section_runs(title, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for index, code in enumerate(SECTIONS[title]):
        first = code.splitlines()[0] if code.strip() else ""
        needed = REQUIRES.match(first)
        if needed:
            missing = [
                name.strip()
                for name in needed.group(1).split(",")
                if importlib.util.find_spec(name.strip()) is None
            ]
            if missing:
                pytest.skip(f"README {title!r} block {index} needs {', '.join(missing)}")
        exec(compile(code, f"README.md[{title}][{index}]", "exec"), namespace)
