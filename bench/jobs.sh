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
export STEPOPS_LOG=warn
echo "== start latency ($runs runs)"
for i in $(seq "$runs"); do
  "$bin" local job run noop --env dev --jobs-dir "$work/jobs" --dir "$work/state" >/dev/null 2>&1
done
python3 - "$work/state" <<'PY'
import json, os, sys, statistics
root = os.path.join(sys.argv[1], "s3")
lat = []
for d, _, files in os.walk(root):
    for f in files:
        if f.endswith(".result"):
            out = json.load(open(os.path.join(d, f))).get("output", {})
            if "startLatencyUs" in out:
                lat.append(out["startLatencyUs"] / 1000)
lat.sort()
print(f"task arrival -> process start: median {statistics.median(lat):.2f} ms, max {lat[-1]:.2f} ms over {len(lat)} runs")
PY
echo "== 1 GiB of output"
/usr/bin/time -f "alone, to /dev/null: %e s wall, peak RSS %M KiB" sh -c 'yes "stepops job bench: a line of output of sixty-four bytes, ok!!" | head -c 1073741824 > /dev/null'
/usr/bin/time -f "alone, to a file: %e s wall" sh -c 'yes "stepops job bench: a line of output of sixty-four bytes, ok!!" | head -c 1073741824 > "$0/alone.log"' "$work"
rm -f "$work/alone.log"
/usr/bin/time -f "through stepops local job run (logs to file): %e s wall, peak RSS %M KiB" \
  "$bin" local job run print --env dev --jobs-dir "$work/jobs" --dir "$work/state2" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
tail -n 1 "$work/err"
python3 - "$work/state2" <<'PY'
import json, os, sys
for d, _, files in os.walk(os.path.join(sys.argv[1], "s3")):
    for f in files:
        if f.endswith(".result"):
            out = json.load(open(os.path.join(d, f))).get("output", {})
            if "durationMs" in out:
                print(f"the step as the runner timed it (spawn to output drained): {out['durationMs'] / 1000:.2f} s, {out['bytes']} bytes, {out['lines']} lines")
PY
