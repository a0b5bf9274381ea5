"""fastbp.tables.read_table: what a clean file gives, and a one-line refusal (naming
the line and column) for each way a hostile file can be wrong, through each csv reader
(np.loadtxt, and pyarrow's when it is installed: it must accept every clean file here
and give the same result or the same error)."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from fastbp import cli, tables
from fastbp.tables import read_table


def write(tmp_path, text, name="data.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture(params=["numpy", "pyarrow", "pandas"])
def reader(request, monkeypatch):
    """FASTBP_CSV_READER set to the param; fell_back records the np.loadtxt calls."""
    if request.param != "numpy":
        pytest.importorskip(request.param)
    monkeypatch.setenv(tables.READER_VARIABLE, request.param)
    fell_back = []
    strict = tables._parse_with_loadtxt

    def recorded(*args):
        fell_back.append(args)
        return strict(*args)

    monkeypatch.setattr(tables, "_parse_with_loadtxt", recorded)
    return SimpleNamespace(name=request.param, fell_back=fell_back)


def read_clean(reader, path, may_decline=(), **options):
    """read_table(path), and a check that the chosen reader itself accepted the file
    (unless it is one of may_decline)."""
    result = read_table(path, **options)
    if reader.name != "numpy" and reader.name not in may_decline:
        assert not reader.fell_back, f"{reader.name} declined a clean file"
    return result


# --- what clean tables give -----------------------------------------------------------


def test_class_names_in_the_last_column(reader, tmp_path):
    path = write(tmp_path, "a,b,label\n1,2.5,yes\n-3,4e2,no\n5,6,yes\n")
    X, y, names, target = read_clean(reader, path)
    assert X.dtype == np.float64 and X.shape == (3, 2)
    assert np.array_equal(X, [[1, 2.5], [-3, 400], [5, 6]])
    assert y.tolist() == ["yes", "no", "yes"]
    assert names == ["a", "b"] and target == "label"


def test_numeric_target_in_the_middle_leaves_the_other_columns_in_order(reader, tmp_path):
    path = write(tmp_path, "a,y,b,c\n1,10,2,3\n4,20,5,6\n")
    X, y, names, target = read_clean(reader, path, target="y")
    assert np.array_equal(X, [[1, 2, 3], [4, 5, 6]]) and names == ["a", "b", "c"]
    assert y.dtype == np.float64 and y.tolist() == [10.0, 20.0] and target == "y"


def test_values_round_trip_exactly(reader, tmp_path):
    values = np.random.default_rng(0).standard_normal((50, 3)) * 10.0 ** np.arange(-150, 150, 100)
    lines = ["a,b,c,y"] + [",".join(repr(float(v)) for v in row) + ",1" for row in values]
    X, _, _, _ = read_clean(reader, write(tmp_path, "\n".join(lines) + "\n"))
    assert np.array_equal(X, values)


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_detected_on_the_header(reader, tmp_path, delimiter):
    rows = [["a", "b", "label"], ["1.5", "2", "x"], ["3", "4", "y"]]
    path = write(tmp_path, "\n".join(delimiter.join(r) for r in rows) + "\n")
    X, y, names, _ = read_clean(reader, path)
    assert np.array_equal(X, [[1.5, 2], [3, 4]]) and names == ["a", "b"]
    assert y.tolist() == ["x", "y"]
    assert np.array_equal(read_clean(reader, path, delimiter=delimiter)[0], X)


def test_a_given_delimiter_wins_over_detection(reader, tmp_path):
    # the header has more commas than semicolons, but the file is ;-separated
    path = write(tmp_path, "a,1;b,2;label\n1;2;x\n3;4;y\n")
    X, _, names, _ = read_clean(reader, path, delimiter=";")
    assert names == ["a,1", "b,2"] and np.array_equal(X, [[1, 2], [3, 4]])


def test_excel_bom_crlf_quotes_and_blank_lines(reader, tmp_path):
    text = 'label,"f 1",f2\r\n"yes, sir",1,2\r\n\r\nno,"3",4\r\n'
    # pandas' reader reads a blank line as one of empty cells, so it leaves it to loadtxt
    path = write(tmp_path, text, encoding="utf-8-sig")
    X, y, names, target = read_clean(reader, path, may_decline={"pandas"}, target="label")
    assert target == "label" and names == ["f 1", "f2"]
    assert y.tolist() == ["yes, sir", "no"] and np.array_equal(X, [[1, 2], [3, 4]])


def test_unicode_class_names_and_tsv(reader, tmp_path):
    path = write(tmp_path, "a\tclasse\n1\télève\n2\tprofesseur\n", name="data.tsv")
    _, y, _, _ = read_clean(reader, path)
    assert y.tolist() == ["élève", "professeur"]


def test_prediction_drops_the_target_column_without_checking_it(reader, tmp_path):
    path = write(tmp_path, "a,label,b\n1,,2\n3,,4\n")
    X, y, names, _ = read_clean(reader, path, target="label", need_target=False)
    assert y is None and names == ["a", "b"] and np.array_equal(X, [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="feature 'label' must hold finite numbers"):
        read_table(path, target="absent", need_target=False)  # then label is a feature


def test_prediction_without_target_reads_every_column_as_a_feature(reader, tmp_path):
    path = write(tmp_path, "a,b\n1,2\n3,4\n")
    X, y, names, _ = read_clean(reader, path, need_target=False)
    assert y is None and names == ["a", "b"] and np.array_equal(X, [[1, 2], [3, 4]])


def test_a_single_data_row_is_still_two_dimensional(reader, tmp_path):
    X, y, _, _ = read_clean(reader, write(tmp_path, "a,b,y\n1,2,3\n"))
    assert X.shape == (1, 2) and y.shape == (1,)


# --- hostile tables -------------------------------------------------------------------


HOSTILE = [
    ("dup", "label,f1,label\n0,1,0\n", "['label'] appear more than once"),
    ("only-target", "label\n0\n1\n", "no feature columns"),
    ("semicolons-as-one-column", "label\n0;1\n", "no feature columns"),
    ("header-only", "a,b,y\n", "only a header"),
    ("empty", "", "no rows"),
    ("empty-target", "a,y\n1,0\n2,\n", "no value on line 3 (got '')"),
    ("nan-target", "a,y\n1,0\n\n2,nan\n", "no value on line 4 (got 'nan')"),
    ("NA-class", "a,y\n1,cat\n2,NA\n", "no value on line 3 (got 'NA')"),
    (
        "text-feature",
        "a,b,y\n1,2,0\n3,four,1\n",
        "feature 'b' must hold finite numbers; line 3 has 'four'",
    ),
    ("empty-feature", "a,b,y\n1,,0\n", "feature 'b' must hold finite numbers; line 2 has ''"),
    (
        "nan-feature",
        "a,b,y\n1,2,0\n3,4,1\ninf,1,0\n",
        "feature 'a' must hold finite numbers; line 4 has 'inf'",
    ),
    ("decimal-comma", 'a;b;y\n1;"2,5";0\n', "decimal commas"),
    ("short-row", "a,b,y\n1,2,0\n3,4\n", "line 3 has 2 fields but the header has 3"),
    ("long-row", "a,b,y\n1,2,0\n3,4,1,9\n", "line 3 has 4 fields but the header has 3"),
    ("all-rows-long", "a,b,y\n1,2,0,9\n3,4,1,9\n", "line 2 has 4 fields but the header has 3"),
]


@pytest.mark.parametrize("text, message", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_tables_are_refused_in_one_line(reader, tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        read_table(path)
    text = str(info.value)
    assert message in text and "\n" not in text and str(path) in text


def test_a_missing_target_column_lists_the_columns(reader, tmp_path):
    path = write(tmp_path, "a,b,y\n1,2,0\n")
    with pytest.raises(ValueError, match=r"has no column 'z'; its columns are \['a', 'b', 'y'\]"):
        read_table(path, target="z")


def test_missing_files_other_extensions_and_delimiters(reader, tmp_path):
    with pytest.raises(ValueError, match="no data file at"):
        read_table(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match=r"expected a \.csv file.*got a '\.txt' file"):
        read_table(write(tmp_path, "a,b\n1,2\n", name="data.txt"))
    path = write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(ValueError, match="delimiter must be one of"):
        read_table(path, delimiter=" ")


def test_a_file_that_is_not_utf8_is_refused(reader, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("a,classe\n1,élève\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"is not UTF-8 text .* at byte 11"):
        read_table(path)


# --- .npz -----------------------------------------------------------------------------


def test_npz_gives_float_features_and_the_targets_as_saved(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.arange(6, dtype=np.int32).reshape(3, 2), y=np.array(["a", "b", "a"]))
    X, y, names, target = read_table(path)
    assert X.dtype == np.float64 and np.array_equal(X, [[0, 1], [2, 3], [4, 5]])
    assert y.tolist() == ["a", "b", "a"] and names == ["x0", "x1"] and target == "y"
    np.savez(path, X=np.ones((2, 2)))
    assert read_table(path, need_target=False)[1] is None


NPZ_HOSTILE = [
    ("no-y", {"X": np.ones((2, 2))}, "must hold arrays named X and y; it has ['X']"),
    ("1-d", {"X": np.ones(3), "y": np.ones(3)}, "X must be a 2-D array of numbers"),
    ("text-X", {"X": np.array([["a", "b"]]), "y": np.ones(1)}, "X must be a 2-D array of numbers"),
    ("no-columns", {"X": np.ones((2, 0)), "y": np.ones(2)}, "X has no feature columns"),
    ("short-y", {"X": np.ones((3, 2)), "y": np.ones(2)}, "one target per row of X (3 rows)"),
    ("nan-y", {"X": np.ones((3, 2)), "y": np.array([0, np.nan, 1])}, "the first in row 1"),
    ("pickle", {"X": np.ones((2, 2)), "y": np.array([{}, {}], dtype=object)}, "pickles"),
]


@pytest.mark.parametrize(
    "arrays, message", [h[1:] for h in NPZ_HOSTILE], ids=[h[0] for h in NPZ_HOSTILE]
)
def test_hostile_npz_files_are_refused_in_one_line(tmp_path, arrays, message):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError) as info:
        read_table(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_corrupt_npz_file_is_refused(tmp_path):
    path = write(tmp_path, "not a zip", name="d.npz")
    with pytest.raises(ValueError, match=r"cannot read .*: it is not an \.npz archive"):
        read_table(path)


# --- the command line -----------------------------------------------------------------


def test_cli_read_data_passes_the_delimiter_and_reports_cli_errors(reader, tmp_path):
    path = write(tmp_path, "a;b;y\n1;2;0\n")
    _, y, names, _ = cli.read_data(str(path), delimiter=";")
    assert names == ["a", "b"] and y.tolist() == [0.0]
    with pytest.raises(cli.CliError, match=r"no feature columns.*split on commas"):
        cli.read_data(str(path), delimiter=",")


def test_cli_refuses_a_nan_class_instead_of_training_on_it(reader, tmp_path, capsys):
    rows = "\n".join(f"{i % 3},{i},{i % 2}" for i in range(30))
    path = write(tmp_path, "f1,f2,label\n" + rows + "\n5,5,nan\n")
    assert cli.main(["train", "--data", str(path), "--epochs", "1", "--quiet"]) == 2
    assert "no value on line 32" in capsys.readouterr().err


def test_the_missing_markers_are_lower_case():
    assert all(marker == marker.lower().strip() for marker in tables.MISSING)


# --- the readers agree ----------------------------------------------------------------


def read_or_error(path, **options):
    """read_table's result, or the text of its ValueError."""
    try:
        return read_table(path, **options)
    except ValueError as exc:
        return str(exc)


def assert_same(first, second):
    """Two read_or_error answers are the same error, or X bit for bit and an equal y."""
    if isinstance(first, str) or isinstance(second, str):
        assert first == second
        return
    (X1, y1, *rest1), (X2, y2, *rest2) = first, second
    assert X1.dtype == X2.dtype == np.float64 and X1.shape == X2.shape
    assert X1.tobytes() == X2.tobytes() and rest1 == rest2  # -0.0 and 0.0 differ here
    assert (y1 is None and y2 is None) or (y1.dtype == y2.dtype and np.array_equal(y1, y2))


#: cells that one parser or the other could read otherwise: odd numbers, spaces, quotes
TRICKY_CELLS = [
    "+1",
    ".5",
    "5.",
    "1E+5",
    "-0",
    "00012",
    " 1",
    "1 ",
    "1\t",
    '"3"',
    '"1"2',
    '1"2"',
    "1e",
    "1_0",
    "0x10",
    "1d5",
    "\u00a01",
    "1e400",
    "1e-400",
    "2.2250738585072011e-308",
    "nan",
    "-Infinity",
    "NA",
    "",
]
#: whole files with something unusual about their lines, quotes or target
TRICKY_FILES = [
    "\na,b,y\n1,2,x\n",  # a blank line before the header
    "a,b,y\r1,2,x\r3,4,z\r",  # old Mac line ends
    "a,b,y\n1,2,x",  # no final line end
    "a,b,y\n1,2,x\n \n",  # a line of one space
    'a,b,y\n1,2,"x\ny"\n3,4,z\n',  # a line break inside a quoted class name
    'a,b,y\n1,2,a"b\n3,4,z\n',  # a quote inside an unquoted class name
    'a,b,y\n1,2,"a""b"\n3,4,z\n',  # a doubled quote
    '"a\nb",c,y\n1,2,x\n',  # a line break inside a quoted header name
    '"x\n1",2,y\n3,4,k\n',  # ... whose second line could pass for numbers
    '"x\n1,2",y\n3,4,k\n',
    'a"b,"c""d",y\n1,2,k\n',  # quotes inside header names
    "a,b,y\n1,2, x\n3,4,x \n5,6,x\n",  # one class written three ways
    "a,b,y\n1,2,1_0\n3,4, 7 \n",  # numeric targets Python's float reads
    "a,b,y\n1,2,NaN\n",  # a missing class in another case
    "a,b,y\n1,2,0\n1,2,1,3\n",  # a long row
    "a,b,y\n1,2,x\n3,4\n",  # a short row, the target's field missing
    "a,y,b\n1,x,2\n3,z\n",  # a short row, a feature's field missing
    "\ufeffa,b,y\r\n1,2,x\r\n3,4,z",  # BOM, CRLF, no final line end
    "a;b;y\n1.5;2e-3;x\n3;4;z\n",  # semicolons (detected, y named)
    "a,b,y\n0.1000000000000000055511151231257827,1e22,x\n7e-324,1.7976931348623157e308,z\n",
    "a,b,y\n12345678901234567890,9007199254740993,x\n",  # integers past 2**53 and 2**64
    "a,b,y\n1,2,x\n-0,-00,z\n",  # integer columns holding a negative zero
    "a,b,y\nTrue,2,x\nFalse,4,z\n",  # cells pandas could read as booleans
    "a,b,y\n1,2,x\n3,4,\n",  # an empty class cell in the last column
]


@pytest.mark.parametrize(
    "text",
    [f"a,b,y\n0,{cell},k\n1,2,j\n" for cell in TRICKY_CELLS] + TRICKY_FILES,
    ids=[f"cell {cell!r}" for cell in TRICKY_CELLS] + [repr(t[:24]) for t in TRICKY_FILES],
)
@pytest.mark.parametrize("need_target", [True, False])
@pytest.mark.parametrize("fast", ["pyarrow", "pandas"])
def test_each_fast_reader_gives_numpys_answer(tmp_path, monkeypatch, text, need_target, fast):
    pytest.importorskip(fast)
    path = write(tmp_path, text)
    answers = []
    for name in ("numpy", fast):
        monkeypatch.setenv(tables.READER_VARIABLE, name)
        answers.append(read_or_error(path, target="y", need_target=need_target))
    assert_same(*answers)


def test_pyarrow_fills_x_across_many_batches(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(1)
    values = rng.standard_normal((3000, 4))
    values[5, 1] = -0.0
    labels = rng.choice(["cat", "dog", "bird"], 3000)
    labels[-3:] = "fish"  # a class first seen in the last batch
    rows = [",".join([*map(repr, map(float, row)), label]) for row, label in zip(values, labels)]
    path = write(tmp_path, "a,b,c,d,label\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(tables, "ARROW_BLOCK_SIZE", 4096)  # about 50 rows a batch
    monkeypatch.setattr(tables, "ARROW_RELEASE_EVERY", 3)
    monkeypatch.setenv(tables.READER_VARIABLE, "pyarrow")
    monkeypatch.setattr(tables, "_parse_with_loadtxt", None)  # it must not be needed
    X, y, _, _ = read_table(path)
    assert X.flags.c_contiguous and X.tobytes() == values.tobytes()
    assert y.tolist() == labels.tolist()


def test_pyarrow_declines_what_it_might_read_otherwise(reader, tmp_path):
    path = write(tmp_path, 'a,y\n1,"say ""hi"""\n2,x\n')
    _, y, _, _ = read_table(path)
    assert y.tolist() == ['say "hi"', "x"] and len(reader.fell_back) == 1


def test_the_reader_setting_is_checked(tmp_path, monkeypatch):
    path = write(tmp_path, "a,y\n1,0\n")
    monkeypatch.setenv(tables.READER_VARIABLE, "polars")
    with pytest.raises(ValueError, match="FASTBP_CSV_READER must be one of 'auto', 'pyarrow'"):
        read_table(path)
    monkeypatch.setattr(tables.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv(tables.READER_VARIABLE, "pyarrow")
    with pytest.raises(ValueError, match=r"needs pyarrow, .*pip install 'fastbp\[arrow\]'"):
        read_table(path)
    monkeypatch.setenv(tables.READER_VARIABLE, "pandas")
    with pytest.raises(ValueError, match=r"needs pandas, .*pip install pandas\)"):
        read_table(path)


def test_auto_reads_with_numpy_when_pyarrow_is_absent(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now fails
    monkeypatch.delenv(tables.READER_VARIABLE, raising=False)
    X, y, _, _ = read_table(write(tmp_path, "a,y\n1.5,x\n"))
    assert X.tolist() == [[1.5]] and y.tolist() == ["x"]


def test_pandas_fills_x_across_chunks_and_grows_it(tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    rng = np.random.default_rng(2)
    values = rng.standard_normal((3000, 3)) * 10.0 ** rng.integers(-300, 300, (3000, 3))
    values[7, 2] = -0.0
    labels = rng.choice(["cat", "dog", "bird"], 3000)
    labels[-2:] = "fish"  # a class first seen in the last chunk
    rows = [",".join([label, *map(repr, map(float, row))]) for row, label in zip(values, labels)]
    path = write(tmp_path, "label;x,a,b,c\n" + "\n".join(rows))  # no final line end
    monkeypatch.setattr(tables, "PANDAS_CHUNK_ROWS", 128)
    monkeypatch.setattr(tables, "MAX_ROW_ESTIMATE", 100)  # X must grow, several times
    monkeypatch.setenv(tables.READER_VARIABLE, "pandas")
    monkeypatch.setattr(tables, "_parse_with_loadtxt", None)  # it must not be needed
    X, y, names, target = read_table(path, target="label;x", delimiter=",")
    assert X.flags.c_contiguous and X.flags.owndata and X.shape == values.shape
    assert X.tobytes() == values.tobytes() and names == ["a", "b", "c"]
    assert y.tolist() == labels.tolist() and target == "label;x"


#: files that pandas' reader reads otherwise than loadtxt, and must leave to it
PANDAS_DECLINES = [
    "a,b,y\n1,2,x\n3,4\n",  # a short row: pandas gives its last field as ""
    "a,b,y\n1,2,x\n \n3,4,z\n",  # a line of spaces, which pandas skips
    "a,b,y\n1,2,x\n\n3,4,z\n",  # a blank line, read as one of empty cells
    '"a\nb",c,y\n1,2,x\n',  # the header spans two lines, loadtxt skips one
    "a,b,y\n1,2,x\n3,4,z,5\n",  # a long row (pandas refuses it)
    "a,b,y\n1,2,x\n3,inf,z\n",  # a number that is not finite
]


@pytest.mark.parametrize("text", PANDAS_DECLINES)
@pytest.mark.parametrize("need_target", [True, False])
def test_pandas_leaves_to_loadtxt_what_it_reads_otherwise(tmp_path, monkeypatch, text, need_target):
    pytest.importorskip("pandas")
    path = write(tmp_path, text)
    declined = []
    monkeypatch.setattr(tables, "_parse_with_loadtxt", None)  # a decline shows as TypeError
    monkeypatch.setenv(tables.READER_VARIABLE, "pandas")
    try:
        read_table(path, target="y", need_target=need_target)
    except TypeError:
        declined.append(path)
    assert declined, "pandas read a file it must leave to np.loadtxt"


def test_auto_reads_with_pandas_when_pyarrow_is_absent(tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.delenv(tables.READER_VARIABLE, raising=False)
    monkeypatch.setattr(tables, "_parse_with_loadtxt", None)  # it must not be needed
    X, y, _, _ = read_table(write(tmp_path, "a,y\n1.5,x\n2,z\n"))
    assert X.tolist() == [[1.5], [2.0]] and y.tolist() == ["x", "z"]


def test_auto_reads_with_numpy_when_pandas_and_pyarrow_are_absent(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pandas", None)
    monkeypatch.delenv(tables.READER_VARIABLE, raising=False)
    X, y, _, _ = read_table(write(tmp_path, "a,y\n1.5,x\n"))
    assert X.tolist() == [[1.5]] and y.tolist() == ["x"]


# --- memory ---------------------------------------------------------------------------

PEAK = """
import importlib, json, os, sys
if sys.argv[2] != "numpy":
    importlib.import_module(sys.argv[2])  # its own memory is not the table's
from fastbp.tables import read_table

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

before = status("VmRSS")
os.environ["FASTBP_CSV_READER"] = sys.argv[2]
X, y, _, _ = read_table(sys.argv[1])
print(json.dumps([status("VmHWM") - before, X.nbytes + y.nbytes, X.shape[0]]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("name", ["pandas"])
def test_a_fast_reader_peaks_under_twice_the_data(tmp_path, name):
    pytest.importorskip(name)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400_000, 20))  # its size, not the fixed costs, counts
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write(",".join(f"f{i}" for i in range(20)) + ",label\n")
        np.savetxt(f, X, fmt="%.17g", delimiter=",", newline=",cat\n")
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(path), name],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        capture_output=True,
        text=True,
        check=True,
    )
    growth, data, rows = json.loads(done.stdout)
    assert rows == len(X) and growth < 2 * data, (growth / 2**20, data / 2**20)
