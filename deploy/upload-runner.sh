#!/usr/bin/env bash
# Cross-builds the stepops runner for Graviton (aarch64 Linux, glibc 2.26+: Amazon Linux 2023)
# and uploads it to the artifact bucket under a content-addressed key. It prints the key and the
# binary's SHA-256: deploy with both, so the launch template changes, the runners roll to the new
# binary and each runner checks the download against RunnerSha256 before it runs it.
#
#   deploy/upload-runner.sh BUCKET            build, upload, print ArtifactKey=... RunnerSha256=...
#   deploy/upload-runner.sh BUCKET ENV        also set ArtifactBucket/ArtifactKey/RunnerSha256 in
#                                             samconfig.toml [ENV.deploy.parameters]
#                                             (then: sam deploy --config-env ENV)
#   deploy/upload-runner.sh --build-only      build and print where the binary is
#
# Needs: cargo-lambda (pip install cargo-lambda; it brings zig) or cargo-zigbuild
# (pip install cargo-zigbuild ziglang); the aws CLI with credentials for the upload.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -eq 1 ] || [ $# -eq 2 ] || usage
case "$1" in -h|--help) usage ;; esac

rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
  || rustup target add aarch64-unknown-linux-gnu

if command -v cargo-lambda >/dev/null 2>&1; then
  echo "upload-runner: cargo lambda build --release --arm64 --bin stepops-runner" >&2
  cargo lambda build --release --arm64 --bin stepops-runner >&2
  binary=target/lambda/stepops-runner/bootstrap
elif command -v cargo-zigbuild >/dev/null 2>&1; then
  echo "upload-runner: cargo zigbuild --release --target aarch64-unknown-linux-gnu.2.26 -p stepops-runner" >&2
  cargo zigbuild --release --target aarch64-unknown-linux-gnu.2.26 -p stepops-runner >&2
  binary=target/aarch64-unknown-linux-gnu/release/stepops-runner
else
  echo "upload-runner: needs cargo-lambda or cargo-zigbuild: pip install cargo-lambda" >&2
  exit 1
fi

if command -v file >/dev/null 2>&1 && ! file -L "$binary" | grep -q 'ARM aarch64'; then
  echo "upload-runner: $binary is not an aarch64 binary: $(file -L "$binary")" >&2
  exit 1
fi
sha256=$(sha256sum "$binary" | cut -d' ' -f1)
key="stepops-runner/${sha256:0:16}/stepops-runner"

if [ "$1" = "--build-only" ]; then
  echo "upload-runner: built $binary ($(du -h "$binary" | cut -f1)), SHA-256 $sha256, would upload as $key" >&2
  echo "$binary"
  exit 0
fi

bucket=$1
env=${2:-}
case "$env" in ''|dev|prod) ;; *) echo "upload-runner: ENV must be dev or prod, not $env" >&2; exit 2 ;; esac
command -v aws >/dev/null 2>&1 || { echo "upload-runner: the aws CLI is needed for the upload" >&2; exit 1; }
aws s3 cp "$binary" "s3://${bucket}/${key}" --sse AES256 --only-show-errors
echo "upload-runner: uploaded s3://${bucket}/${key}" >&2
if [ -n "$env" ]; then
  python3 deploy/sam-overrides.py --write "$env" "ArtifactBucket=${bucket}" "ArtifactKey=${key}" "RunnerSha256=${sha256}"
  echo "Deploy with: sam deploy --config-env ${env}   (samconfig.toml now names this binary: commit it)" >&2
else
  # A command-line --parameter-overrides REPLACES samconfig.toml's whole list: never pass only
  # the key. Either put it in samconfig.toml, or pass the merged list.
  echo "Deploy with, either: deploy/upload-runner.sh ${bucket} ENV (sets it in samconfig.toml), then sam deploy --config-env ENV" >&2
  echo "  or: sam deploy --config-env ENV --parameter-overrides \"\$(deploy/sam-overrides.py ENV ArtifactBucket=${bucket} ArtifactKey=${key} RunnerSha256=${sha256})\"" >&2
fi
echo "ArtifactKey=${key}"
echo "RunnerSha256=${sha256}"
