#!/usr/bin/env bash
# Static checks of the Terraform module and its example:
#   terraform fmt -check, init + validate (module and examples/lambda), terraform test,
#   and checkov (in a virtual environment of its own, .venv-checkov).
# Prints SKIPPED and exits 0 where terraform is not installed. Terraform's state, data
# directories, lock files and plugin cache all live in a temporary folder that is
# removed at the end: the checkout is left as it was.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

# checkov pins its own boto3 and hcl2, which clash with the project's: own venv, pinned.
CHECKOV_VERSION="3.3.30"
CHECKOV_VENV="${CHECKOV_VENV:-$repo/.venv-checkov}"
# A filesystem mirror of the providers, for machines without the registry; used when present.
TF_PLUGIN_MIRROR="${TF_PLUGIN_MIRROR:-/opt/tf-plugins}"

if ! command -v terraform >/dev/null 2>&1; then
  echo "SKIPPED terraform checks: terraform is not on PATH (install Terraform >= 1.11 to run fmt, validate, terraform test and checkov)"
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/s3store-terraform.XXXXXX")"
trap 'rm -rf "$work"' EXIT

export CHECKPOINT_DISABLE=1 # no version check call, nothing written to the home folder
export TF_IN_AUTOMATION=1
export TF_INPUT=0
export TF_PLUGIN_CACHE_DIR="$work/plugin-cache"
export TF_CLI_CONFIG_FILE="$work/terraform.rc"
mkdir -p "$TF_PLUGIN_CACHE_DIR"
if [ -d "$TF_PLUGIN_MIRROR" ]; then
  cat >"$TF_CLI_CONFIG_FILE" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$TF_PLUGIN_MIRROR"
    include = ["registry.terraform.io/hashicorp/*"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/*"]
  }
}
RC
else
  : >"$TF_CLI_CONFIG_FILE"
fi

step() {
  local started=$SECONDS
  echo "--- $*"
  "$@"
  echo "    ok ($((SECONDS - started)) s)"
}

# Terraform writes .terraform.lock.hcl next to the configuration: work on a copy.
mkdir "$work/src"
tar -C "$here" --exclude=.terraform --exclude=.terraform.lock.hcl --exclude='*.tfstate*' \
  --exclude=build -cf - . | tar -C "$work/src" -xf -

tf() { # tf <dir> <args...>: terraform in a copied folder, with its own data directory
  local dir="$1"
  shift
  TF_DATA_DIR="$work/data/${dir//\//_}" terraform -chdir="$work/src/$dir" "$@"
}

# sed reads to the end: head would exit after a line, and terraform writing its next one
# would die of SIGPIPE, which pipefail makes this script's failure (exit 141, now and then).
terraform version | sed -n 1p
step terraform fmt -check -recursive -diff "$here"
init() { tf "$1" init -backend=false -no-color >"$work/init.log" || { cat "$work/init.log"; return 1; }; }
for dir in . examples/lambda; do
  step init "$dir"
  step tf "$dir" validate -no-color
done
step tf . test -no-color

if [ ! -x "$CHECKOV_VENV/bin/checkov" ] || [ "$("$CHECKOV_VENV/bin/checkov" --version 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
  echo "--- creating $CHECKOV_VENV with checkov $CHECKOV_VERSION"
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi
# --skip-download and BC_SKIP_MAPPING: run offline, without fetching guidelines or
# policies from the vendor's platform.
BC_SKIP_MAPPING=TRUE step "$CHECKOV_VENV/bin/checkov" --directory "$work/src" --framework terraform \
  --skip-download --compact --quiet

echo "terraform checks passed"
