#!/bin/bash
# stepops runner bootstrap (generated from deploy/user-data.sh)
# This is the user data of template.yaml's RunnerLaunchTemplate, verbatim: CloudFormation fills
# the ${...} placeholders. Keep both in step: crates/stepops-pipeline/tests/deploy_files.rs checks.
set -euo pipefail
install -d -m 0755 /opt/stepops/bin /etc/stepops
id stepops >/dev/null 2>&1 || useradd --system --home-dir /var/lib/stepops --create-home --shell /sbin/nologin stepops
aws s3 cp --region ${AWS::Region} "s3://${ArtifactBucket}/${ArtifactKey}" /opt/stepops/bin/stepops-runner
chmod 0755 /opt/stepops/bin/stepops-runner
cat > /etc/stepops/runner.yaml <<'YAML'
activities: ["${MigrateActivity}"]
concurrency: ${RunnerConcurrency}
environment: ${Environment}
allowed_targets: "${AllowedTargets}"
region: ${AWS::Region}
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
