#!/usr/bin/env bash
# Installs what the stepops test suite needs on a fresh Debian machine, and nothing that is
# already there. Safe to run again. Needs root (or sudo) only when something is missing.
set -euo pipefail

# --bench: also the benchmark's peers (pgcopydb, reladiff); the test suite never needs them.
bench=0
[ "${1:-}" = "--bench" ] && bench=1

need_apt=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  need_apt+=(postgresql)
fi
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client)
command -v pg_dump >/dev/null 2>&1 || need_apt+=(postgresql-client)
if [ "$bench" -eq 1 ]; then
  command -v pgcopydb >/dev/null 2>&1 || need_apt+=(pgcopydb)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: installing ${need_apt[*]} with apt-get" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest with cargo install" >&2
  cargo install --locked cargo-nextest
fi

# The repository sync's tests start moto's S3 server (awscrt: its CRC64NVME checksums; without it
# moto silently falls back to CRC32).
if ! python3 -c "import moto.server, awscrt, flask_cors" 2>/dev/null; then
  echo "install-deps: installing moto[server] and awscrt with pip (S3 server for tests)" >&2
  python3 -m pip install -q "moto[server]" awscrt crc32c || python3 -m pip install -q --break-system-packages "moto[server]" awscrt crc32c
fi

# The relationalize tests read the Parquet output with DuckDB (an independent reader).
if ! python3 -c "import duckdb" 2>/dev/null; then
  echo "install-deps: installing duckdb with pip (independent Parquet reader for tests)" >&2
  python3 -m pip install -q duckdb || python3 -m pip install -q --break-system-packages duckdb
fi
# The job catalog's schema test validates jobs/*.yaml with an independent validator.
if ! python3 -c "import jsonschema, yaml" 2>/dev/null; then
  echo "install-deps: installing jsonschema and PyYAML with pip (job schema test)" >&2
  python3 -m pip install -q jsonschema pyyaml || python3 -m pip install -q --break-system-packages jsonschema pyyaml
fi

# reladiff needs its PostgreSQL driver (the extra); without it, it prints an error and exits 0.
if [ "$bench" -eq 1 ] && ! { command -v reladiff >/dev/null 2>&1 && python3 -c "import psycopg2" 2>/dev/null; }; then
  echo "install-deps: installing reladiff[postgresql] with pip (benchmark peer)" >&2
  if ! { python3 -m pip install -q "reladiff[postgresql]" || python3 -m pip install -q --break-system-packages "reladiff[postgresql]"; }; then
    echo "install-deps: could not install reladiff (pip install 'reladiff[postgresql]'); the bench will skip it" >&2
  fi
fi
