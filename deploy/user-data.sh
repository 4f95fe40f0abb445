#!/bin/bash
# stepops runner bootstrap (generated from deploy/user-data.sh)
# This is the user data of template.yaml's RunnerLaunchTemplate, verbatim: CloudFormation fills
# the ${...} placeholders. Keep both in step: crates/stepops-pipeline/tests/deploy_files.rs checks.
set -euo pipefail
install -d -m 0755 /opt/stepops/bin /etc/stepops /var/log/stepops
id stepops >/dev/null 2>&1 || useradd --system --home-dir /var/lib/stepops --create-home --shell /sbin/nologin stepops
# Logs: the unit appends the runner's output to /var/log/stepops/runner.log; the
# CloudWatch agent sends it and this boot's log to the stack's RunnerLogGroup.
cat > /etc/logrotate.d/stepops-runner <<'ROTATE'
/var/log/stepops/runner.log {
  daily
  maxsize 100M
  rotate 3
  compress
  copytruncate
  missingok
  notifempty
}
ROTATE
cat > /etc/stepops/cloudwatch-agent.json <<'JSON'
{"agent": {"run_as_user": "root"},
 "logs": {"logs_collected": {"files": {"collect_list": [
  {"file_path": "/var/log/stepops/runner.log", "log_group_name": "${RunnerLogGroup}", "log_stream_name": "{instance_id}/runner"},
  {"file_path": "/var/log/cloud-init-output.log", "log_group_name": "${RunnerLogGroup}", "log_stream_name": "{instance_id}/boot"}]}}}}
JSON
if dnf install -y -q amazon-cloudwatch-agent logrotate; then
  /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:/etc/stepops/cloudwatch-agent.json
else
  echo "stepops-boot: WARNING: amazon-cloudwatch-agent could not be installed (no route to the OS package repositories?): the runner's logs stay on this instance, /var/log/stepops/runner.log" >&2
fi
# The runner binary runs only if its SHA-256 is the stack's RunnerSha256.
verify_sha256() {
  local actual
  actual=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$actual" != "$2" ]; then
    echo "stepops-boot: NOT starting the runner: $3 has SHA-256 $actual but the stack's RunnerSha256 is $2; upload the binary again with deploy/upload-runner.sh and deploy the ArtifactKey and RunnerSha256 it prints" >&2
    return 1
  fi
  echo "stepops-boot: $3 has the expected SHA-256 $2" >&2
}
aws s3 cp --region ${AWS::Region} "s3://${ArtifactBucket}/${ArtifactKey}" /opt/stepops/bin/stepops-runner.download
verify_sha256 /opt/stepops/bin/stepops-runner.download "${RunnerSha256}" "s3://${ArtifactBucket}/${ArtifactKey}" || exit 1
install -m 0755 /opt/stepops/bin/stepops-runner.download /opt/stepops/bin/stepops-runner
rm -f /opt/stepops/bin/stepops-runner.download
# TLS to Amazon RDS: the global CA bundle from AWS's trust store, for database URLs with
# sslmode=verify-full&sslrootcert=/opt/stepops/rds-global-bundle.pem (docs/security.md).
if curl -fsS --retry 5 --max-time 60 -o /opt/stepops/rds-global-bundle.pem.download https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem \
  && grep -q 'BEGIN CERTIFICATE' /opt/stepops/rds-global-bundle.pem.download; then
  install -m 0644 /opt/stepops/rds-global-bundle.pem.download /opt/stepops/rds-global-bundle.pem
  echo "stepops-boot: RDS CA bundle installed: $(grep -c 'BEGIN CERTIFICATE' /opt/stepops/rds-global-bundle.pem) certificates" >&2
else
  echo "stepops-boot: WARNING: the RDS CA bundle could not be downloaded: database URLs with sslrootcert=/opt/stepops/rds-global-bundle.pem will fail (Stepops.InvalidInput) until it is there" >&2
fi
rm -f /opt/stepops/rds-global-bundle.pem.download
cat > /etc/stepops/runner.yaml <<'YAML'
activities: ["${MigrateActivity}", "${JobActivity}"]
concurrency: ${RunnerConcurrency}
environment: ${Environment}
allowed_targets: "${AllowedTargets}"
region: ${AWS::Region}
job_log_group: ${JobLogGroup}
drain_timeout_seconds: 120
YAML
cat > /etc/systemd/system/stepops-runner.service <<'UNIT'
[Unit]
Description=stepops runner (polls Step Functions activities)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=stepops
Environment=STEPOPS_CONFIG=/etc/stepops/runner.yaml
Environment=STEPOPS_LOG=info
ExecStart=/opt/stepops/bin/stepops-runner
StandardOutput=append:/var/log/stepops/runner.log
StandardError=append:/var/log/stepops/runner.log
Restart=always
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec=180
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now stepops-runner.service
