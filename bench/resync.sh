#!/usr/bin/env bash
# Re-sync without change tracking, measured: a full copy, a no-difference run, an untracked
# incremental from a quiet source (its verification compares only the copied ranges), the same
# from a busy source (a transaction held open on it during the run: both sides compared in
# full) and a cut-over incremental, of one table of N rows, each a whole `stepops migrate`
# process. Before each incremental run the source gets 0.1 % of its rows updated, 0.01 %
# deleted and 0.1 % inserted. Needs psql and a PostgreSQL server whose role may create
# databases (databases `stepops_resync_src` and `_dst` are dropped and created).
#
#   bench/resync.sh postgres://postgres@127.0.0.1:5432 2000000 [path/to/stepops]
set -euo pipefail
base=${1:?usage: bench/resync.sh POSTGRES_URL [ROWS] [STEPOPS]}
rows=${2:-2000000}
stepops=${3:-target/release/stepops}
src="$base/stepops_resync_src"
dst="$base/stepops_resync_dst"
export PGOPTIONS="-c client_min_messages=warning"
psql_on() { psql -q -v ON_ERROR_STOP=1 "$1" "${@:2}"; }
for db in stepops_resync_src stepops_resync_dst; do
  psql_on "$base/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done
table="CREATE TABLE t (id bigint PRIMARY KEY, a int, b text, c timestamptz)"
psql_on "$src" -c "$table" \
  -c "INSERT INTO t SELECT g, g % 1000, md5(g::text), '2026-01-01'::timestamptz + g * interval '1 s' FROM generate_series(1, $rows) g" \
  -c "VACUUM ANALYZE t"
psql_on "$dst" -c "$table"
timed() {
  local start end
  start=$(date +%s.%N)
  "$stepops" migrate --source "$src" --dest "$dst" --jobs 2 "$@" >/tmp/stepops-resync.log 2>&1 \
    || { cat /tmp/stepops-resync.log; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
change() {
  psql_on "$src" -c "UPDATE t SET a = a + 1 WHERE id % 1000 = 7 + $1" \
    -c "DELETE FROM t WHERE id % 10000 = 3 + $1" \
    -c "INSERT INTO t SELECT g, 1, 'new', now() FROM generate_series($rows + 1 + $1 * $rows / 1000, $rows + ($1 + 1) * $rows / 1000) g" \
    -c "VACUUM ANALYZE t"
}
# Runs "$@" while another session holds a transaction open on the source (a live writer).
busy_source() {
  local fifo pid
  fifo=$(mktemp -u)
  mkfifo "$fifo"
  psql -q -X "$src" <"$fifo" >/dev/null &
  pid=$!
  exec 9>"$fifo"
  echo "BEGIN; SELECT txid_current();" >&9
  sleep 0.5
  "$@"
  exec 9>&-
  wait "$pid" || true
  rm -f "$fifo"
}
full=$(timed)
psql_on "$dst" -c "VACUUM ANALYZE t"
same=$(timed)
change 0
incremental=$(timed)
change 1
busy=$(busy_source timed)
change 2
cut_over=$(timed --cut-over)
printf '%-24s %8s %8s %8s\n' run seconds "of full" "passes"
for pair in "full copy:$full" "no difference:$same" "untracked incremental:$incremental" "busy-source incremental:$busy" "cut-over incremental:$cut_over"; do
  name=${pair%%:*}; secs=${pair##*:}
  printf '%-24s %8.2f %7.0f%% %8.2f\n' "$name" "$secs" "$(echo "100 * $secs / $full" | bc -l)" "$(echo "$secs / $same" | bc -l)"
done
