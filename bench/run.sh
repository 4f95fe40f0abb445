#!/usr/bin/env bash
# The stepops benchmark in one command: installs the peers (pgcopydb with apt-get, reladiff with
# pip), builds the release binary and runs `stepops bench` (throwaway PostgreSQL on 127.0.0.1).
# Arguments go to `stepops bench` (default: --rows 5000000). The report is printed and saved as
# bench/last-report.md. See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "bench: installing what the benchmark needs (scripts/install-deps.sh --bench)" >&2
scripts/install-deps.sh --bench
command -v pgcopydb >/dev/null 2>&1 || echo "bench: pgcopydb missing: apt-get install pgcopydb (it will be skipped)" >&2
command -v reladiff >/dev/null 2>&1 || echo "bench: reladiff missing: pip install 'reladiff[postgresql]' (it will be skipped)" >&2

echo "bench: building the release binary" >&2
# The same package selection as the README's `cargo run --release --bin stepops` (the whole
# workspace's feature set): `-p stepops-cli` would resolve features differently and rebuild the
# dependency tree after a first `cargo run`.
cargo build --release --locked --bin stepops
bin="${CARGO_TARGET_DIR:-target}/release/stepops"

"$bin" bench "$@" | tee bench/last-report.md
