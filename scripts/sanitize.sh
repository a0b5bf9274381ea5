#!/usr/bin/env bash
# Build fastbp's compiled kernels with AddressSanitizer + UndefinedBehaviorSanitizer
# and run the test suite (`python -m pytest`, as in the README) against that build.
#
# The work happens in a throw-away copy of the repository, so the normal in-place
# build in this checkout is never touched. The copy holds every tracked file as it
# is in the working tree (uncommitted edits included); pass --untracked to also
# copy untracked files that .gitignore does not exclude (e.g. a new test file).
#
# Quiet when all is well: one final line. On any sanitizer report or test failure it
# prints the pytest output and the report, and exits non-zero: pytest's status (134
# when a sanitizer aborted it), 1 if only a sanitizer complained, 2 if the
# instrumented build or the import check failed.
#
# Usage: scripts/sanitize.sh [-v|--verbose] [--untracked] [--] [extra pytest args]
# Environment: PYTHON (interpreter, default `python`), CC (compiler whose sanitizer
# runtime is preloaded, default Python's configured CC), SANITIZE_KEEP=1 keeps the
# temporary directory, TMPDIR chooses where it is created.
set -euo pipefail

verbose=0
untracked=0
pytest_args=()
while (($#)); do
    case "$1" in
        -v|--verbose) verbose=1 ;;
        --untracked) untracked=1 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
                   exit 0 ;;
        --) shift; pytest_args+=("$@"); break ;;
        *) pytest_args+=("$1") ;;
    esac
    shift
done

say() { if ((verbose)); then echo "sanitize: $*" >&2; fi; }
fail() { echo "sanitize: FAILED: $*" >&2; exit "${2:-1}"; }

root=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
start_time=$SECONDS

# Resolve the real interpreter once: `python` may be a wrapper script (pyenv shim),
# and that wrapper must not run with the sanitizer runtime preloaded.
py=$("${PYTHON:-python}" -c 'import sys; print(sys.executable)')

work=$(mktemp -d "${TMPDIR:-/tmp}/fastbp-sanitize.XXXXXX")
cleanup() {
    if [[ "${SANITIZE_KEEP:-0}" == 1 ]]; then
        echo "sanitize: kept $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

src="$work/src"
reports="$work/reports"
mkdir -p "$src" "$reports"

# --- 1. Copy the tracked files (working-tree contents) -----------------------------
ls_args=(--cached)
((untracked)) && ls_args+=(--others --exclude-standard)
say "copying $root to $src"
# Tracked files deleted in the working tree are skipped; NUL separators keep any
# file name intact.
git -C "$root" ls-files -z "${ls_args[@]}" | sort -zu |
    while IFS= read -r -d '' f; do
        if [[ -e "$root/$f" || -L "$root/$f" ]]; then printf '%s\0' "$f"; fi
    done |
    tar -C "$root" --null -T - -cf - | tar -C "$src" -xf -

# --- 2. Build the extensions in place, instrumented --------------------------------
# -O1 (after setup.py's -O3, so it wins) keeps reports' stacks and line numbers
# readable; -fno-sanitize-recover turns every UBSan finding into a fatal error.
# Note: Python's own compile flags include -fwrapv, which makes signed overflow
# defined behaviour (it wraps in the normal build too), so UBSan's
# signed-integer-overflow check never fires here.
san_flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="$san_flags -fno-omit-frame-pointer -g -O1"
jobs=$(nproc 2>/dev/null || echo 1)
((jobs > 2)) && jobs=2   # there are only two extension modules
say "building with: $cflags"
if ! (cd "$src" && FASTBP_EXTRA_CFLAGS="$cflags" FASTBP_EXTRA_LDFLAGS="$san_flags" \
        "$py" setup.py build_ext --inplace -j "$jobs") >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    fail "build of the instrumented extensions failed" 2
fi
((verbose)) && cat "$work/build.log" >&2

# Make sure the flags really reached the compiler: a silently uninstrumented build
# would let this script pass without checking anything.
mods=("$src"/fastbp/_kernels/*.so)
[[ -e "${mods[0]}" ]] || fail "no extension module was built in $src/fastbp/_kernels" 2
for so in "${mods[@]}"; do
    grep -qa '__asan_report_' "$so" || fail "$(basename "$so") is not ASan-instrumented" 2
    grep -qa '__ubsan_handle_' "$so" || fail "$(basename "$so") is not UBSan-instrumented" 2
done

# --- 3. Runtime environment ------------------------------------------------------
# The interpreter is not instrumented, so it does not load the ASan runtime itself;
# loaded later with the extension, the runtime refuses to start (it must replace
# malloc and friends before anything uses them), hence LD_PRELOAD. The compiler that
# built the extensions says where its runtimes are; libubsan is added when the
# modules link it as a separate runtime (GCC does).
cc=${CC:-$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("CC") or "cc")')}
cc=${cc%% *}
runtime() {
    local lib
    lib=$("$cc" -print-file-name="$1")
    [[ "$lib" == /* && -e "$lib" ]] || fail "$cc does not know where $1 is" 2
    readlink -f "$lib"
}
preload=$(runtime libasan.so)
deps=$(ldd "${mods[@]}")   # not piped into grep -q: pipefail would see SIGPIPE
if grep -q 'libubsan\.so' <<<"$deps"; then
    preload="$preload:$(runtime libubsan.so)"
fi

# detect_leaks=0: CPython does not free everything at exit (interned strings, module
#   state, numpy's caches ...), so LeakSanitizer would flag the interpreter itself on
#   every run; the tests are about the kernels' memory accesses, not about leaks.
# halt_on_error=1: stop at the first report. abort_on_error=1: stop with SIGABRT,
#   which makes Python's faulthandler print the Python stack, so the output names
#   the test as well as the C frames.
# allocator_may_return_null=1: an impossible allocation returns NULL (Python raises
#   MemoryError) instead of being reported as an ASan error.
# log_path: ASan reports, from pytest or from a subprocess a test starts (whose
#   stderr the test may swallow), land in $reports; any file there fails the run.
#   GCC's separate UBSan runtime ignores log_path when ASan is loaded too and always
#   writes to file descriptor 2; see the pytest options below.
# strip_path_prefix: show paths relative to the copy instead of the temp directory.
common="halt_on_error=1:abort_on_error=1:log_path=$reports/report:strip_path_prefix=$src/"
asan_options="detect_leaks=0:allocator_may_return_null=1:$common"
ubsan_options="print_stacktrace=1:$common"

# PYTHONMALLOC=malloc: Python objects come from malloc instead of pymalloc's arenas,
#   so ASan puts redzones around them too (a stray write into one is caught).
# PYTHONFAULTHANDLER=1: also in subprocesses the tests start, print the Python stack
#   on the SIGABRT that ends a sanitizer report.
run_sanitized() {
    (cd "$src" && env \
        LD_PRELOAD="$preload${LD_PRELOAD:+:$LD_PRELOAD}" \
        ASAN_OPTIONS="$asan_options" \
        UBSAN_OPTIONS="$ubsan_options" \
        PYTHONMALLOC=malloc \
        PYTHONFAULTHANDLER=1 \
        PYTHONPATH="$src${PYTHONPATH:+:$PYTHONPATH}" \
        PYTHONDONTWRITEBYTECODE=1 \
        "$@"
     # Not the subshell's last command, so the subshell is not replaced by the
     # interpreter: its "Aborted" notice goes to the redirected output, not here.
     rc=$?; exit "$rc")
}

# --- 4. Check that the copy (and its instrumented build) is what gets imported -----
check='import fastbp, fastbp._kernels.engine as e; print(fastbp.__file__, e.__file__, fastbp.available_backends())'
if ! info=$(run_sanitized "$py" -c "$check" 2>&1); then
    echo "$info" >&2
    cat "$reports"/* >&2 2>/dev/null || true
    fail "importing fastbp from the copy failed" 2
fi
say "import check: $info"
read -r pkg_file eng_file backends_list <<<"$(tail -n 1 <<<"$info")"
[[ "$pkg_file" == "$src/"* && "$eng_file" == "$src/"* ]] ||
    fail "imported fastbp from outside the copy: $info" 2
[[ "$backends_list" == *"'cython'"* ]] ||
    fail "the cython backend is unavailable in the instrumented build: $info" 2

# --- 5. Run the suite ------------------------------------------------------------
# --capture=sys: pytest's default capture redirects file descriptor 2 to a temporary
# file per test, which is lost when a sanitizer aborts the process, and with it any
# UBSan report. Capturing at the sys.stdout/sys.stderr level only leaves descriptor
# 2 on pytest.log. Same tests, same selection; only where C-level output goes.
pytest_cmd=("$py" -m pytest --capture=sys "${pytest_args[@]}")
say "running: ${pytest_cmd[*]:1}"
set +e
if ((verbose)); then
    run_sanitized "${pytest_cmd[@]}" 2>&1 | tee "$work/pytest.log" >&2
    status=${PIPESTATUS[0]}
else
    run_sanitized "${pytest_cmd[@]}" >"$work/pytest.log" 2>&1
    status=$?
fi
set -e
elapsed=$((SECONDS - start_time))

# pytest's closing line, e.g. "==== 151 passed, 2 skipped in 31.2s ====" (absent
# when a sanitizer stopped the process).
summary=$(grep -E '^=+ .*(passed|failed|error|no tests ran).* in [0-9.]+s' "$work/pytest.log" |
          tail -n 1 | sed -E 's/^=+ //; s/ =+$//' || true)

# A sanitizer spoke if it left a report file (ASan) or wrote to pytest's output
# (UBSan's "runtime error:" lines, or any runtime's "==PID==ERROR:" header).
san_pattern='runtime error: |^==[0-9]+==ERROR: '
if compgen -G "$reports/*" >/dev/null || grep -qE "$san_pattern" "$work/pytest.log"; then
    ((verbose)) || cat "$work/pytest.log" >&2
    for f in "$reports"/*; do
        [[ -e "$f" ]] || continue
        echo "----- sanitizer report ($(basename "$f")) -----" >&2
        cat "$f" >&2
    done
    # One-line digest: the sanitizer's SUMMARY (or its first error line) and the test
    # that was running, taken from faulthandler's Python stack.
    all_reports=$(cat "$reports"/* "$work/pytest.log" 2>/dev/null || true)
    what=$(grep -m 1 '^SUMMARY: ' <<<"$all_reports" | sed 's/^SUMMARY: //' || true)
    [[ -n "$what" ]] ||
        what=$(grep -m 1 -oE '[^ ]*: runtime error: .*|==[0-9]+==ERROR: .*' <<<"$all_reports" || true)
    where=$(grep -m 1 -E '^  File "[^"]*/tests/[^"]*", line [0-9]+ in ' "$work/pytest.log" |
            sed -E "s|^  File \"$src/||; s|\", line ([0-9]+) in (.*)|:\1 \2|" || true)
    echo "sanitize: FAILED: ${what:-see the sanitizer report above}${where:+ (in $where)};" \
         "pytest exit status $status, ${summary:-run aborted}, total ${elapsed}s" >&2
    ((status != 0)) || status=1
    exit "$status"
fi
if ((status != 0)); then
    ((verbose)) || cat "$work/pytest.log" >&2
    echo "sanitize: FAILED: pytest exit status $status (${summary:-no summary}), total ${elapsed}s" >&2
    exit "$status"
fi
echo "sanitize: ASan+UBSan clean, ${summary:-tests passed} (total ${elapsed}s)"
