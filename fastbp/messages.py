"""How error messages quote the values they were given: shortened lists of items,
NumPy scalars shown as the Python values they hold."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

# How many items an error lists before it writes "...".
ITEMS_SHOWN = 5


def plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds (reprs read 'a', not np.str_('a'))."""
    return value.item() if isinstance(value, np.generic) else value


def listed(
    values: Iterable[Any], show: Callable[[Any], str] | None = None, limit: int = ITEMS_SHOWN
) -> str:
    """The first limit values, each as show(value) (default: the repr of plain(value)),
    joined: "'a', 'b', ... (7 in all)"."""
    values = list(values)
    show = show or (lambda value: repr(plain(value)))
    text = ", ".join(show(value) for value in values[:limit])
    return text + (f", ... ({len(values)} in all)" if len(values) > limit else "")
