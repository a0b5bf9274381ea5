"""Reading data files: a .csv (or .tsv) table with a header row, or an .npz archive.

`read_table` returns ``(X, y, feature_names, target_name)`` and refuses, with a one-line
``ValueError``, anything it would otherwise have to guess at: duplicate column names, a
missing or incomplete target, a cell that is not a number, a ragged row.

A table's head (header, delimiter, names, target) is checked in Python; the cells go
to the readers of `FAST_READERS`, then to NumPy's, until one accepts the file. The
``FASTBP_CSV_READER`` environment variable picks them: ``auto`` (the default) tries
pyarrow's multi-threaded CSV reader (the ``arrow`` extra), copied batch by batch into
a preallocated array, then pandas' C parser, chunk by chunk into a preallocated array
(each when installed); ``pyarrow`` and ``pandas`` try that one alone; ``numpy`` goes
straight to `np.loadtxt`. A fast reader declines whenever it fails or its result
holds anything the strict reader might refuse or split otherwise (a null, a number
that is not finite, a missing target, a quote or line break in a class name, a blank
or short row). The strict reader is `np.loadtxt` (one pass; the target's cells reach a
small converter that maps each distinct text to a code); when it fails, a slow pass
with the `csv` module finds the first bad line so that the message can name it. All
give the same X, bit for bit, and the same y on every file they accept (each parses
numbers to the nearest float64): errors cost time, clean files do not.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import numpy as np
from numpy.typing import NDArray

from fastbp.validation import all_finite, check_option

Table = tuple[NDArray[np.float64], np.ndarray | None, list[str], str | None]
#: a fast csv reader: (path, delimiter, header, target column, need_target) -> (X, y),
#: or None when it declines the file and leaves it to the next reader (at last, loadtxt)
FastReader = Callable[
    [str, str, list[str], int | None, bool],
    tuple[NDArray[np.float64], np.ndarray | None] | None,
]

#: delimiters recognised on the header line, in order of preference on a tie
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
#: target cells read as "no value" (compared stripped and lower-cased)
MISSING = frozenset({"", "nan", "na", "n/a", "nan.0", "null", "none", "?", "-", "#n/a"})
ENCODING = "utf-8-sig"  # a byte-order mark, as Excel writes it, is not part of the header
#: the environment variable that picks the csv readers (a key of FAST_READERS)
READER_VARIABLE = "FASTBP_CSV_READER"
#: pyarrow's read block (bytes), a record batch of the table it returns
ARROW_BLOCK_SIZE = 1 << 20
#: the copied batches after which their memory is handed back (fewer calls, a higher peak)
ARROW_RELEASE_EVERY = 8
#: the rows of each chunk pandas' reader parses; each is copied into X, then freed
PANDAS_CHUNK_ROWS = 1 << 16
#: the rows of X filled at a time, one column after another (a tile that stays in cache)
COPY_TILE_ROWS = 2048
#: the most rows X is first given room for (it grows in place beyond, a quarter at a time)
MAX_ROW_ESTIMATE = 1 << 20


def read_table(
    path: str | os.PathLike[str],
    *,
    target: str | None = None,
    need_target: bool = True,
    delimiter: str | None = None,
) -> Table:
    """(X, y, feature_names, target_name) from a .csv/.tsv or .npz file.

    path : a .csv or .tsv file (header row, then one sample per row) or an .npz
        archive (arrays X and, for training, y).
    target : the target column of a table (default: the last one when need_target).
    need_target : False for prediction: the target column, when present, is dropped
        from the features (unchecked) and y is None.
    delimiter : the table's field separator (default: detected on the header line).

    Returns X : ndarray of shape (n_samples, n_features), float64; y : ndarray of
    shape (n_samples,) (floats when every target cell is a number, else the class
    names as strings) or None; the feature names; the target's name (or None).
    Raises ValueError, one line naming the file, for anything it cannot read.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"no data file at {path!r}; check the path")
    extension = os.path.splitext(path)[1].lower()
    if extension not in READERS:
        raise ValueError(
            f"{path!r}: expected a .csv file with a header row (or .tsv), or an .npz file "
            f"with arrays X and y; got a {extension or 'extensionless'!r} file; rename or "
            "convert it"
        )
    if delimiter is not None:
        check_option("delimiter", delimiter, DELIMITERS)
    try:
        return READERS[extension](path, target, need_target, delimiter)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as "
            "UTF-8 (in Excel: CSV UTF-8)"
        ) from None


# --- .npz ---------------------------------------------------------------------------


def _read_npz(path: str, target: str | None, need_target: bool, delimiter: str | None) -> Table:
    """Arrays X (2-D, numbers) and y (one per row of X) from an .npz archive."""
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"cannot read {path!r}: it is not an .npz archive (a zip of .npy arrays); "
            "write it with np.savez(path, X=X, y=y)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            members = list(archive.files)
            if "X" not in members or (need_target and "y" not in members):
                wanted = "X and y" if need_target else "X"
                raise ValueError(
                    f"{path!r} must hold arrays named {wanted}; it has {members}; save it "
                    "with np.savez(path, X=X, y=y)"
                )
            X = archive["X"]
            y = archive["y"] if need_target else None
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ValueError(
                f"{path!r} holds Python objects (pickles), which fastbp never loads; save "
                "plain numeric arrays (np.savez with numbers or strings, no dtype=object)"
            ) from None
        raise
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read {path!r} as an .npz archive ({exc})") from None
    if X.ndim != 2 or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise ValueError(
            f"{path!r}: X must be a 2-D array of numbers (n_samples, n_features); got "
            f"shape {X.shape} of dtype {X.dtype}; reshape or convert it before saving"
        )
    if X.shape[1] == 0:
        raise ValueError(f"{path!r}: X has no feature columns (shape {X.shape}); save X with some")
    if y is not None:
        if y.ndim not in (1, 2) or len(y) != len(X):
            raise ValueError(
                f"{path!r}: y must hold one target per row of X ({len(X)} rows); got shape "
                f"{y.shape}; save matching X and y"
            )
        if y.dtype.kind == "f" and np.isnan(y).any():
            row = int(np.flatnonzero(np.isnan(y).reshape(len(y), -1).any(axis=1))[0])
            raise ValueError(
                f"{path!r}: y has missing values (NaN), the first in row {row}; drop or "
                "fill those samples"
            )
    return X.astype(np.float64, copy=False), y, [f"x{i}" for i in range(X.shape[1])], "y"


# --- .csv / .tsv --------------------------------------------------------------------


def _read_csv(path: str, target: str | None, need_target: bool, delimiter: str | None) -> Table:
    """The table's columns: the head checked here, the cells by the readers in turn."""
    header, first_row, delimiter = _head(path, delimiter)
    duplicates = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicates:
        raise ValueError(
            f"{path!r}: column names must be unique; {duplicates} appear more than once in "
            "the header (line 1); rename them"
        )
    if target is None and need_target:
        target = header[-1]
    if target is not None and target not in header:
        if need_target:
            raise ValueError(
                f"{path!r} has no column {target!r}; its columns are {header}; pass one of "
                f"them as the target{_delimiter_hint(header, delimiter)}"
            )
        target = None
    column = header.index(target) if target is not None else None
    features = [name for name in header if name != target]
    if not features:
        raise ValueError(
            f"{path!r} has no feature columns: its only column is the target {target!r}"
            f"{_delimiter_hint(header, delimiter)}; add feature columns"
        )
    if len(first_row) != len(header):
        _raise_first_problem(path, delimiter, header, column, need_target)
    for parse in _fast_readers():
        parsed = parse(path, delimiter, header, column, need_target)
        if parsed is not None:
            return *parsed, features, target
    X, y = _parse_with_loadtxt(path, delimiter, header, column, need_target)
    return X, y, features, target


def _fast_readers() -> tuple[FastReader, ...]:
    """The readers FASTBP_CSV_READER names, tried in turn before np.loadtxt."""
    choice = check_option(READER_VARIABLE, os.environ.get(READER_VARIABLE, "auto"), FAST_READERS)
    if choice in READER_PACKAGES and importlib.util.find_spec(choice) is None:
        raise ValueError(
            f"{READER_VARIABLE}={choice} needs {choice}, which is not installed; install it "
            f"({READER_PACKAGES[choice]}) or set {READER_VARIABLE}=auto"
        )
    return FAST_READERS[choice]


def _parse_with_loadtxt(
    path: str, delimiter: str, header: list[str], column: int | None, need_target: bool
) -> tuple[NDArray[np.float64], np.ndarray | None]:
    """(X, y) through np.loadtxt, or ValueError naming the first bad line.

    X : ndarray of shape (n_samples, len(header) - 1 or len(header)) (the target column,
    at index column, removed); y : ndarray of shape (n_samples,), or None unless
    need_target."""
    labels: dict[str, int] = {}
    converters: dict[int | str, Callable[[str], Any]] | None = (
        None if column is None else {column: _coder(labels)}
    )
    try:
        table = np.loadtxt(
            path,
            delimiter=delimiter,
            skiprows=1,
            comments=None,
            quotechar='"',
            encoding=ENCODING,
            converters=converters,
            ndmin=2,
        )
    except ValueError:
        _raise_first_problem(path, delimiter, header, column, need_target)
    y = None
    if column is not None:
        codes = table[:, column].astype(np.intp)
        names = [name.strip() for name in labels]
        if need_target and any(name.lower() in MISSING for name in names):
            _raise_first_problem(path, delimiter, header, column, need_target)
        y = _target_values(names)[codes] if need_target else None
        # the features in place: shift the columns after the target left by one
        table[:, column:-1] = table[:, column + 1 :]
        table = table[:, :-1]
    if not np.isfinite(table).all():
        _raise_first_problem(path, delimiter, header, column, need_target)
    return table, y


def _parse_with_arrow(
    path: str, delimiter: str, header: list[str], column: int | None, need_target: bool
) -> tuple[NDArray[np.float64], np.ndarray | None] | None:
    """(X, y) as _parse_with_loadtxt gives them, through pyarrow's CSV reader; None
    (the strict reader then decides) when pyarrow is absent or fails, or when the file
    holds anything the strict reader might refuse or split otherwise.

    pyarrow parses the whole file on every core; its record batches are then copied,
    oldest first, into a C-order X and each is freed and handed back to the system as
    it goes (by pyarrow's default pool, mimalloc in its wheels), so that the peak stays
    near the table's size and X's, not twice that."""
    try:
        import pyarrow as pa
        from pyarrow import csv as pa_csv
    except ImportError:
        return None
    columns = [f"c{index}" for index in range(len(header))]
    features = [name for index, name in enumerate(columns) if index != column]
    target = columns[column] if column is not None and need_target else None
    types = {name: pa.float64() for name in features}
    if target is not None:
        types[target] = pa.string()  # class names or numbers, decided as loadtxt's are
    options = {
        "read_options": pa_csv.ReadOptions(
            column_names=columns, skip_rows=1, block_size=ARROW_BLOCK_SIZE
        ),
        "parse_options": pa_csv.ParseOptions(
            delimiter=delimiter, quote_char='"', double_quote=True, escape_char=False
        ),
        "convert_options": pa_csv.ConvertOptions(
            column_types=types,
            include_columns=list(types),
            null_values=[],  # an empty or "NA" feature cell is an error, not a null
            true_values=[],
            false_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    }
    pool = pa.default_memory_pool()
    try:
        table = pa_csv.read_csv(path, **options, memory_pool=pool)
    except pa.ArrowException:
        return None
    numbers = table.select(features)
    if table.num_rows == 0 or any(
        cells.null_count or cells.type != pa.float64() for cells in numbers.columns
    ):
        return None
    targets = table.column(target) if target is not None else None
    batches = numbers.to_batches()[::-1]
    del table, numbers
    X = np.empty((sum(len(batch) for batch in batches), len(features)))
    start = 0
    while batches:
        batch = batches.pop()
        for index, cells in enumerate(batch.columns):
            X[start : start + len(batch), index] = cells.to_numpy()
        start += len(batch)
        del batch
        if len(batches) % ARROW_RELEASE_EVERY == 0:
            pool.release_unused()  # the freed batches back to the system
    if not all_finite(X):
        return None
    if targets is None:
        return X, None
    coded = targets.dictionary_encode().combine_chunks()
    texts = coded.dictionary.to_pylist()
    if coded.null_count or any('"' in text or "\n" in text or "\r" in text for text in texts):
        return None
    names = [text.strip() for text in texts]
    if any(name.lower() in MISSING for name in names):
        return None
    return X, _target_values(names)[coded.indices.to_numpy()]


def _parse_with_pandas(
    path: str, delimiter: str, header: list[str], column: int | None, need_target: bool
) -> tuple[NDArray[np.float64], np.ndarray | None] | None:
    """(X, y) as _parse_with_loadtxt gives them, through pandas' C parser; None (the
    strict reader then decides) when pandas is absent or fails, or when the file holds
    anything the strict reader might refuse or split otherwise.

    pandas reads the file in chunks of PANDAS_CHUNK_ROWS rows; each chunk's columns are
    copied into a C-order X (grown in place, by realloc, when the file has more rows
    than foreseen) and the chunk is dropped, so that the peak stays near X's size. The
    target column, read as text even when it is dropped, reveals a short row: pandas
    fills a missing last field with an empty text, where the strict reader refuses the row."""
    try:
        import pandas as pd
    except ImportError:
        return None
    with open(path, "rb") as f:
        if f.readline().count(b'"') % 2:
            return None  # a header name spans lines: loadtxt would skip only the first
    columns = [f"c{index}" for index in range(len(header))]
    features = [name for index, name in enumerate(columns) if index != column]
    target = columns[column] if column is not None else None
    # numbers cost half the time when pandas infers their type. Integers are exact in
    # float64 (or rounded to the nearest, as loadtxt does), but for -0, read as 0: an
    # integer column holding a 0 has the file read again with every feature typed
    # float64. Only then, as booleans would be read as 1.0 and 0.0 with that typing,
    # and the first pass, which refuses them, has seen every cell.
    try:
        parsed = _read_pandas_chunks(pd, path, delimiter, columns, features, target, False)
        if parsed is not None and parsed[-1]:
            parsed = _read_pandas_chunks(pd, path, delimiter, columns, features, target, True)
    except (ValueError, Warning, pd.errors.ParserError, OverflowError):
        return None
    if parsed is None:
        return None
    X, codes, labels, start, _ = parsed
    if start == 0:
        return None
    X.resize((start, len(features)), refcheck=False)
    if not all_finite(X):
        return None
    if target is None:
        return X, None
    texts = list(labels)
    if column == len(header) - 1 and "" in labels:
        return None  # an empty last cell may be a short row's missing field
    if any('"' in text or "\n" in text or "\r" in text for text in texts):
        return None
    names = [text.strip() for text in texts]
    if not need_target:
        return X, None
    if any(name.lower() in MISSING for name in names):
        return None
    return X, _target_values(names)[codes[:start]]


def _read_pandas_chunks(
    pd: Any,
    path: str,
    delimiter: str,
    columns: list[str],
    features: list[str],
    target: str | None,
    typed: bool,
) -> tuple[NDArray[np.float64], NDArray[np.intp], dict[str, int], int, bool] | None:
    """(X, codes, labels, rows, zero_integers) read by pandas chunk by chunk: X of shape
    (at least rows, len(features)), codes of shape (at least rows,) index the texts of
    labels; zero_integers tells whether a column of integers held a 0. None when a
    feature column is neither floats nor integers.

    typed : every feature column given as float64 (else inferred). Raises what pandas
    raises, warnings included."""
    types: dict[str, Any] = dict.fromkeys(features, np.float64) if typed else {}
    if target is not None:
        types[target] = object
    # pandas 3 parses numbers with fast_float, to the nearest float64 as loadtxt does;
    # before, only its "round_trip" converter (Python's own) was sure to
    nearest = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    X = np.empty((_row_estimate(path, len(columns)), len(features)))
    codes = np.empty(len(X), dtype=np.intp)
    labels: dict[str, int] = {}
    start = 0
    zero_integers = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas warns where it guesses: a decline
        chunks = pd.read_csv(
            path,
            sep=delimiter,
            header=0,  # the header row, replaced by names (faster than skipping it)
            names=columns,
            index_col=False,
            dtype=types,
            engine="c",
            quotechar='"',
            doublequote=True,
            escapechar=None,
            comment=None,
            na_filter=False,  # an empty or "NA" feature cell is an error, not a NaN
            skip_blank_lines=False,  # a blank line (or of spaces): NaN cells, a decline
            encoding="utf-8",
            chunksize=PANDAS_CHUNK_ROWS,
            **nearest,
        )
        with chunks:
            for chunk in chunks:
                stop = start + len(chunk)
                cells = [chunk[name].to_numpy() for name in features]
                if any(values.dtype.kind not in "fiu" for values in cells):
                    return None  # booleans, texts: the strict reader's to refuse
                zero_integers = zero_integers or any(
                    values.dtype.kind in "iu" and not values.all() for values in cells
                )
                if stop > len(X):  # resize fills the new rows with zeros: not too many
                    rows = stop + max(stop // 4, PANDAS_CHUNK_ROWS)
                    X.resize((rows, len(features)), refcheck=False)
                    codes.resize(rows, refcheck=False)
                _copy_columns(cells, X[start:stop])
                if target is not None:
                    found, texts = pd.factorize(chunk[target].to_numpy())
                    known = [labels.setdefault(text, len(labels)) for text in texts]
                    codes[start:stop] = np.asarray(known, dtype=np.intp)[found]
                start = stop
    return X, codes, labels, start, zero_integers


def _row_estimate(path: str, n_columns: int) -> int:
    """The rows a table of this size holds at most when each cell has one character
    (fewer when its cells are longer: X then takes only the memory it fills)."""
    return max(1, min((os.path.getsize(path) + 1) // (2 * n_columns), MAX_ROW_ESTIMATE))


def _copy_columns(cells: list[np.ndarray], out: NDArray[np.float64]) -> None:
    """out[:, j] = cells[j] for each column j, out's rows a tile at a time.

    cells : list of n_features ndarrays of shape (n_rows,), floats or integers (cast
    to the nearest float64); out : ndarray of shape (n_rows, n_features), C-order."""
    for first in range(0, len(out), COPY_TILE_ROWS):
        tile = out[first : first + COPY_TILE_ROWS]
        for index, values in enumerate(cells):
            tile[:, index] = values[first : first + COPY_TILE_ROWS]


def _head(path: str, delimiter: str | None) -> tuple[list[str], list[str], str]:
    """(header, first data row, delimiter) of a table, the delimiter detected unless given."""
    with open(path, encoding=ENCODING, newline="") as f:
        first_line = f.readline()
        if delimiter is None:
            counts = {d: first_line.count(d) for d in DELIMITERS}
            delimiter = max(counts, key=lambda d: counts[d])  # the first listed on a tie
        f.seek(0)
        rows = _rows(f, delimiter)
        header = next(rows, (0, []))[1]
        first_row = next(rows, (0, []))[1]
    if not header or not first_row:
        raise ValueError(
            f"{path!r} needs a header row and at least one data row; it has "
            f"{'no rows' if not header else 'only a header'}"
        )
    return [name.strip() for name in header], first_row, delimiter


def _rows(lines: Any, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number as an editor shows it, fields) of each non-empty row."""
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"')
    for row in reader:
        if row:  # np.loadtxt skips empty lines too
            yield reader.line_num, row


def _coder(labels: dict[str, int]) -> Callable[[str], int]:
    """A loadtxt converter: each distinct target text gets the next code, in labels."""

    def code(cell: str) -> int:
        return labels.setdefault(cell, len(labels))

    return code


def _target_values(names: list[str]) -> np.ndarray:
    """The target value of each code: floats if every name is a number, else the names."""
    try:
        return np.array([float(name) for name in names])
    except ValueError:
        return np.array(names)


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def _delimiter_hint(header: list[str], delimiter: str) -> str:
    """A hint when a one-column header suggests a delimiter that was not detected."""
    if len(header) != 1:
        return ""
    used = DELIMITERS[delimiter]
    return f" (the header was split on {used}s; pass the file's delimiter if it is another)"


def _raise_first_problem(
    path: str, delimiter: str, header: list[str], column: int | None, need_target: bool
) -> NoReturn:
    """Scans the table in Python and raises ValueError for its first bad line (the
    target column, at index column, is checked for values only when need_target)."""
    with open(path, encoding=ENCODING, newline="") as f:
        rows = _rows(f, delimiter)
        next(rows)  # the header
        for line, row in rows:
            if len(row) != len(header):
                raise ValueError(
                    f"{path!r}: line {line} has {len(row)} fields but the header has "
                    f"{len(header)}; every row needs one value per column"
                )
            for index, cell in enumerate(row):
                if index == column:
                    if need_target and cell.strip().lower() in MISSING:
                        raise ValueError(
                            f"{path!r}: the target {header[index]!r} has no value on line "
                            f"{line} (got {cell!r}); fill it or drop that row"
                        )
                elif not _is_number(cell):
                    decimal = " (decimal commas are not read; use points)" if "," in cell else ""
                    raise ValueError(
                        f"{path!r}: feature {header[index]!r} must hold finite numbers; line "
                        f"{line} has {cell!r}{decimal}; fix the cell or drop the column"
                    )
    raise ValueError(f"{path!r} cannot be read as a table of numbers; check its format")


READERS = {".csv": _read_csv, ".tsv": _read_csv, ".npz": _read_npz}
#: the readers each FASTBP_CSV_READER setting tries, in turn, before np.loadtxt
FAST_READERS: dict[str, tuple[FastReader, ...]] = {
    "auto": (_parse_with_arrow, _parse_with_pandas),
    "pyarrow": (_parse_with_arrow,),
    "pandas": (_parse_with_pandas,),
    "numpy": (),
}
#: the package a FASTBP_CSV_READER setting needs (its name), and how to install it
READER_PACKAGES = {"pyarrow": "pip install 'fastbp[arrow]'", "pandas": "pip install pandas"}
