#!/usr/bin/env bash
# The Python package's checks, for CI after the Rust tests:
#   python/ci.sh PATH/TO/tycho
# pins python/Cargo.lock to the root lock, checks formatting and lints of the extension crate, creates
# (or reuses) a virtualenv, runs `pip install ./python` (maturin builds the extension over crates/sdk)
# with pytest and requests, and runs python/tests against `tycho dev` started from the given binary.
# Prints how long the install took and the pass count. Environment: TYCHO_PY_VENV (default
# python/.venv), TYCHO_PY_SKIP_CLIPPY=1 to skip clippy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
[ $# -eq 1 ] || { echo "usage: $0 PATH/TO/tycho" >&2; exit 2; }
tycho_bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
[ -x "$tycho_bin" ] || { echo "$1: not an executable tycho binary" >&2; exit 2; }
venv=${TYCHO_PY_VENV:-$here/.venv}
start=$(date +%s)
stamp() { echo "== [python $(( $(date +%s) - start )) s] $*"; }

stamp "python/Cargo.lock pinned to Cargo.lock"
python3 "$here/sync_lock.py" sync

stamp "format and lints of the extension crate (its own workspace)"
cargo fmt --manifest-path "$here/Cargo.toml" -- --check
if [ "${TYCHO_PY_SKIP_CLIPPY:-}" != 1 ]; then
  cargo clippy --manifest-path "$here/Cargo.toml" --all-targets -- -D warnings
fi

stamp "virtualenv $venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
pip install --quiet --disable-pip-version-check "pytest>=8" "requests>=2"

stamp "pip install ./python"
t0=$(date +%s)
(cd "$root" && pip install --disable-pip-version-check ./python)
echo "pip install ./python took $(( $(date +%s) - t0 )) s"
python3 "$here/sync_lock.py" check

stamp "pytest python/tests against $tycho_bin dev"
log=$(mktemp)
set +e
(cd "$root" && python -m pytest python/tests --tycho "$tycho_bin" -v -s -p no:cacheprovider) 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -oE '[0-9]+ passed' "$log" | tail -n1 | grep -oE '[0-9]+' || echo 0)
failed=$(grep -oE '[0-9]+ (failed|error|errors)' "$log" | tail -n1 | grep -oE '[0-9]+' || echo 0)
grep -o 'MEASURE.*ratio [0-9.]*' "$log" || true
rm -f "$log"
echo "python tests: $passed passed, $failed failed"
stamp "done"
exit "$status"
