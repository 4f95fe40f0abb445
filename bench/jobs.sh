#!/usr/bin/env bash
# Ops job figures (docs/jobs.md, "Measured"), on the local engine with the in-process runner:
#   1. task arrival -> process start: the median and max `startLatencyUs` of N one-step runs;
#   2. a step printing 1 GiB: the stepops process's peak RSS, its wall time, and the step's own
#      duration as the runner timed it, beside the same command alone (output to /dev/null, and
#      to a file).
#   bench/jobs.sh [STEPOPS_BINARY] [RUNS]   (default: target/release/stepops, 20 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/stepops}"
runs="${2:-20}"
[ -x "$bin" ] || { echo "build it first: cargo build --release --bin stepops" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/jobs"
cat > "$work/jobs/noop.yaml" <<'YAML'
name: noop
description: Does nothing (start latency).
environments: [dev]
command: ["true"]
timeout_seconds: 120
idempotent: true
YAML
cat > "$work/jobs/print.yaml" <<'YAML'
name: print
description: Prints 1 GiB of 64-byte lines.
environments: [dev]
command: [sh, -c, 'yes "stepops job bench: a line of output of sixty-four bytes, ok!!" | head -c 1073741824']
timeout_seconds: 3600
idempotent: true
YAML
# The outputs of the step results the local engine kept under a state dir, one JSON per line.
results() {
  python3 - "$1" <<'PY'
import json, os, sys
for d, _, files in os.walk(os.path.join(sys.argv[1], "s3")):
    for f in sorted(files):
        if f.endswith(".result"):
            print(json.dumps(json.load(open(os.path.join(d, f))).get("output", {})))
PY
}
export STEPOPS_LOG=warn
echo "== start latency ($runs runs)"
for i in $(seq "$runs"); do
  "$bin" local job run noop --env dev --jobs-dir "$work/jobs" --dir "$work/state" >/dev/null 2>&1
done
results "$work/state" | python3 -c '
import json, statistics, sys
lat = sorted(o["startLatencyUs"] / 1000 for o in map(json.loads, sys.stdin) if "startLatencyUs" in o)
print(f"task arrival -> process start: median {statistics.median(lat):.2f} ms, max {lat[-1]:.2f} ms over {len(lat)} runs")
'
echo "== 1 GiB of output"
/usr/bin/time -f "alone, to /dev/null: %e s wall, peak RSS %M KiB" sh -c 'yes "stepops job bench: a line of output of sixty-four bytes, ok!!" | head -c 1073741824 > /dev/null'
/usr/bin/time -f "alone, to a file: %e s wall" sh -c 'yes "stepops job bench: a line of output of sixty-four bytes, ok!!" | head -c 1073741824 > "$0/alone.log"' "$work"
rm -f "$work/alone.log"
/usr/bin/time -f "through stepops local job run (logs to file): %e s wall, peak RSS %M KiB" \
  "$bin" local job run print --env dev --jobs-dir "$work/jobs" --dir "$work/state2" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
tail -n 1 "$work/err"
results "$work/state2" | python3 -c '
import json, sys
for o in map(json.loads, sys.stdin):
    if "durationMs" in o:
        secs, size, lines = o["durationMs"] / 1000, o["bytes"], o["lines"]
        print(f"the step as the runner timed it (spawn to output drained): {secs:.2f} s, {size} bytes, {lines} lines")
'
