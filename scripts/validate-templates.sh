#!/usr/bin/env bash
# Checks the deployment templates without AWS credentials:
#   - every statemachine/*.asl.json with asl-validator (npm),
#   - template.yaml with cfn-lint and `sam validate --lint`,
#   - samconfig.toml: dev and prod never share a stack, a setting or a secret,
#   - with --build: `sam build` (cargo-lambda cross-builds every function for arm64; release,
#     or debug when SAM_BUILD_MODE=debug, as scripts/test.sh runs it).
# Installs what is missing: asl-validator with npm into ~/.cache/stepops-tools, cfn-lint,
# aws-sam-cli and cargo-lambda with pip. Needs node, python3 and, for --build, rustup.
#   scripts/validate-templates.sh [--build]
set -euo pipefail
cd "$(dirname "$0")/.."
export SAM_CLI_TELEMETRY=0
build=false
[ "${1:-}" = "--build" ] && build=true

tools="${XDG_CACHE_HOME:-$HOME/.cache}/stepops-tools"
aslv="$tools/node_modules/.bin/asl-validator"
if [ ! -x "$aslv" ]; then
  echo "validate-templates: installing asl-validator into $tools/ (npm)" >&2
  mkdir -p "$tools"
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error asl-validator@4 >&2
fi
need_pip=()
command -v cfn-lint >/dev/null 2>&1 || need_pip+=(cfn-lint)
command -v sam >/dev/null 2>&1 || need_pip+=(aws-sam-cli)
if $build; then
  command -v cargo-lambda >/dev/null 2>&1 || need_pip+=(cargo-lambda)
fi
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "validate-templates: installing ${need_pip[*]} (pip)" >&2
  python3 -m pip install --quiet "${need_pip[@]}" >&2
  hash -r
fi

echo "== asl-validator statemachine/*.asl.json" >&2
for f in statemachine/*.asl.json; do
  "$aslv" --json-path "$f"
done
echo "== cfn-lint template.yaml" >&2
cfn-lint template.yaml
echo "== sam validate --lint" >&2
sam validate --lint --template-file template.yaml
echo "== samconfig.toml (dev and prod kept apart)" >&2
python3 scripts/check-samconfig.py samconfig.toml
if $build; then
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
  echo "== sam build (${SAM_BUILD_MODE:-release})" >&2
  sam build --no-cached --parallel
  for f in .aws-sam/build/*/bootstrap; do
    file -L "$f" | grep -q 'ARM aarch64' || { echo "not an arm64 binary: $f" >&2; exit 1; }
    echo "built $f" >&2
  done
fi
echo "validate-templates: all checks passed" >&2
