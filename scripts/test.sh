#!/usr/bin/env bash
# The whole stepops test suite: installs what it needs, checks formatting and lints, then runs
# every test (tests that need PostgreSQL start and stop their own server on 127.0.0.1).
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
