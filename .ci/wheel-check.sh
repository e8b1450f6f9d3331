#!/usr/bin/env bash
# A wheel built from the repo installs into a clean virtual environment, and
# `import s3store` works there with the runtime dependencies alone.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

.venv/bin/python -m pip wheel -q --no-deps --disable-pip-version-check -w "$work/dist" .
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$work"/dist/s3store-*.whl
"$work/venv/bin/python" - <<'PY'
import importlib.util
import sys

import s3store

for tool in ("moto", "pytest", "hypothesis", "click", "rich"):
    if importlib.util.find_spec(tool) is not None:
        sys.exit(f"{tool} was installed with the runtime dependencies")
store = s3store.InMemorySessionStore()
print(f"wheel OK: s3store {s3store.__version__} imports with only its runtime dependencies")
PY
"$work/venv/bin/python" -m s3store.probe --help >/dev/null
echo "wheel OK: python -m s3store.probe runs with the runtime dependencies alone"
# Without the `cli` extra the command says how to get it, and exits 2 (usage).
status=0
message="$("$work/venv/bin/s3store" ls 2>&1)" || status=$?
if [[ $status -ne 2 || "$message" != *"s3store[cli]"* ]]; then
    echo "s3store without its extra: exit $status, said: $message" >&2
    exit 1
fi
echo "wheel OK: without the cli extra, the command names it: $message"
