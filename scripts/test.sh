#!/usr/bin/env bash
# The whole stepops test suite: installs what it needs, checks formatting and lints, then runs
# every test (tests that need PostgreSQL start and stop their own server on 127.0.0.1), and
# finally checks the deployment: asl-validator on every state machine, cfn-lint and
# `sam validate --lint` on template.yaml, samconfig.toml's dev/prod separation, and `sam build`
# cross-building every function for arm64 with cargo-lambda (scripts/validate-templates.sh).
# The suite's `sam build` is a debug build (SAM_BUILD_MODE=debug): it proves that every function
# cross-builds, links and is packaged for arm64 in a third of a release build's time (a release
# build of the functions' dependencies for arm64 took 22 minutes on 2 cores); `sam build` before
# a deploy builds release. STEPOPS_SAM_BUILD_MODE=release makes the suite build release too.
# STEPOPS_SKIP_SAM_BUILD=1 leaves out only the `sam build` (for quick local runs; CI never sets it).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests" >&2
cargo nextest run --workspace --locked --no-fail-fast "$@"
cargo test --workspace --doc --locked
echo "== templates" >&2
if [ "${STEPOPS_SKIP_SAM_BUILD:-0}" = "1" ]; then
  echo "test: STEPOPS_SKIP_SAM_BUILD=1: sam build left out" >&2
  scripts/validate-templates.sh
elif [ "${STEPOPS_SAM_BUILD_MODE:-debug}" = "release" ]; then
  scripts/validate-templates.sh --build
else
  SAM_BUILD_MODE=debug scripts/validate-templates.sh --build
fi
