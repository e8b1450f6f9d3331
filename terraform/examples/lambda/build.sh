#!/usr/bin/env bash
# Builds build/lambda.zip: handler.py and s3store with its dependencies, as wheels
# for the Lambda runtime (x86_64, the Python version below).
#   S3STORE_SPEC   what pip installs as s3store (default: this repository's checkout)
#   PYTHON_VERSION the runtime's Python (default 3.12, matching var.runtime)
set -euo pipefail
cd "$(dirname "$0")"

spec="${S3STORE_SPEC:-$(cd ../../.. && pwd)}"
python_version="${PYTHON_VERSION:-3.12}"

rm -rf build/package build/wheels build/lambda.zip
mkdir -p build/package build/wheels
# s3store itself is pure Python: build its wheel here, then install it with its
# dependencies as the runtime's wheels (aiohttp and pydantic-core are compiled).
python3 -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir build/wheels "$spec"
python3 -m pip install --quiet --disable-pip-version-check --target build/package \
  --platform manylinux2014_x86_64 --implementation cp --python-version "$python_version" \
  --only-binary=:all: build/wheels/*.whl
cp handler.py build/package/
(cd build/package && python3 -m zipfile -c ../lambda.zip .)
echo "built $(pwd)/build/lambda.zip"
