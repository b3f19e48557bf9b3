#!/usr/bin/env bash
# The runtime-only install, checked for real: `pip install .` (not editable) into a new venv,
# then `aco route` with the rules and with the golden bundle, `aco-lab`'s one-line install hint,
# and no package of the lab stack installed. Prints the size of the venv's site-packages; with
# --full also installs '.[lab]' into a second venv and prints its size for comparison.
#
#   scripts/check_runtime_install.sh [--full] [DIR]    (DIR: where the venvs go; default a temp dir)
#
# Needs the network once (pip fetches numpy, click, pyyaml, msgspec; with --full the lab stack).
# tests/aco/test_runtime_install.py checks the same without installing.
set -euo pipefail

FULL=0
if [[ "${1:-}" == "--full" ]]; then FULL=1; shift; fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-$(mktemp -d)}"
PYTHON="${PYTHON:-python3}"
LAB_PACKAGES='^(polars|pyarrow|scikit-learn|scipy|lightgbm|matplotlib|threadpoolctl|pandas)=='

fail() { echo "FAIL: $*" >&2; exit 1; }
site_packages() { "$1/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"; }

echo "== runtime install: pip install $REPO -> $DIR/runtime"
"$PYTHON" -m venv "$DIR/runtime"
"$DIR/runtime/bin/pip" install --quiet "$REPO"
RT="$DIR/runtime/bin"

cd "$(mktemp -d)"  # away from the repository: only the installed package can be imported
echo "== aco route (rules)"
"$RT/aco" route "Fix the auth bug in production"
echo "== aco route (golden bundle)"
"$RT/aco" route "Summarise the attached quarterly report" --task-type research \
    --bundle "$REPO/tests/golden/router_bundle_v1.pkl"

echo "== aco-lab without the lab"
if "$RT/aco-lab" --help >out.txt 2>err.txt; then fail "aco-lab ran without the lab stack"; fi
cat err.txt
[[ "$(wc -l <err.txt)" -eq 1 ]] || fail "aco-lab printed more than one line"
grep -qF "pip install 'aco[lab]'" err.txt || fail "aco-lab did not say how to install the lab"

echo "== installed packages"
"$RT/pip" list --format=freeze
if "$RT/pip" list --format=freeze | grep -iE "$LAB_PACKAGES"; then
    fail "a lab package was installed with the runtime"
fi

echo "== sizes"
du -sh "$(site_packages "$DIR/runtime")" | sed 's/^/runtime: /'
if [[ "$FULL" == 1 ]]; then
    "$PYTHON" -m venv "$DIR/full"
    "$DIR/full/bin/pip" install --quiet "$REPO[lab]"
    "$DIR/full/bin/aco-lab" --version
    du -sh "$(site_packages "$DIR/full")" | sed 's/^/runtime + lab: /'
fi
echo "OK"
