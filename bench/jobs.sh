#!/usr/bin/env bash
# Ops job figures (docs/jobs.md, "Measured"), on the local engine with the in-process runner:
#   1. task arrival -> process start: the median and max `startLatencyUs` of N one-step runs;
#   2. a step printing 1 GiB, without a secret, with a secret injected that the output does not
#      hold (the search for it is what costs), and with the secret on every line (worst case): the stepops process's peak RSS
#      and the step's own duration as the runner timed it, against the same command alone
#      writing to a file, in ROUNDS interleaved rounds (this machine's speed drifts: each
#      round's ratio is taken against the command alone run just before it).
#   bench/jobs.sh [STEPOPS_BINARY] [RUNS] [ROUNDS]   (default: target/release/stepops, 20, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/stepops}"
runs="${2:-20}"
rounds="${3:-3}"
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
description: Prints 1 GiB of 62-byte lines.
environments: [dev]
command: [sh, -c, 'yes "stepops job bench: a line of output of sixty-four bytes, ok!!" | head -c 1073741824']
timeout_seconds: 3600
idempotent: true
YAML
sed -e 's/^name: print$/name: printmasked/' -e 's/^environments: \[dev\]$/environments: [dev]\nsecrets:\n  TOKEN:\n    dev: {secret: stepops\/dev\/bench-token}/' \
  "$work/jobs/print.yaml" > "$work/jobs/printmasked.yaml"
# The worst case: the injected secret on every line (each line masked).
sed -e 's/^name: printmasked$/name: printsecret/' -e 's/stepops job bench: a line of output of sixty-four bytes, ok!!/stepops job bench: every line holds s3cr3t-t0ken-value, ok!!!/' \
  "$work/jobs/printmasked.yaml" > "$work/jobs/printsecret.yaml"
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
echo "== 1 GiB of output ($rounds rounds)"
line="stepops job bench: a line of output of sixty-four bytes, ok!!"
/usr/bin/time -f "alone, to /dev/null: %e s wall, peak RSS %M KiB" sh -c 'yes "$0" | head -c 1073741824 > /dev/null' "$line"
step_seconds() {
  results "$1" | python3 -c '
import json, sys
print(next(o["durationMs"] / 1000 for o in map(json.loads, sys.stdin) if "durationMs" in o))'
}
for round in $(seq "$rounds"); do
  for job in print printmasked printsecret; do
    text=$line
    [ "$job" = printsecret ] && text="stepops job bench: every line holds s3cr3t-t0ken-value, ok!!!"
    /usr/bin/time -f "%e" -o "$work/alone" sh -c 'yes "$0" | head -c 1073741824 > "$1"' "$text" "$work/alone.log"
    alone=$(cat "$work/alone")
    rm -f "$work/alone.log"
    rm -rf "$work/state2"
    /usr/bin/time -f "%M" -o "$work/rss" "$bin" local job run "$job" --env dev --jobs-dir "$work/jobs" \
      --dir "$work/state2" --secret stepops/dev/bench-token=s3cr3t-t0ken-value >/dev/null 2>"$work/err" \
      || { cat "$work/err"; exit 1; }
    step=$(step_seconds "$work/state2")
    echo "round $round $job: the step $step s (spawn to output drained), the command alone to a file $alone s," \
      "ratio $(python3 -c "print(f'{$step / $alone:.2f}')"), stepops peak RSS $(cat "$work/rss") KiB"
  done
done
