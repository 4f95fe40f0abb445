#!/usr/bin/env bash
# Installs what the stepops test suite needs on a fresh Debian machine, and nothing that is
# already there. Safe to run again. Needs root (or sudo) only when something is missing.
set -euo pipefail

need_apt=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  need_apt+=(postgresql)
fi
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client)
command -v pg_dump >/dev/null 2>&1 || need_apt+=(postgresql-client)

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
