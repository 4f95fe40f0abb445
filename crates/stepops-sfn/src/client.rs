//! Building the AWS clients: the shared configuration (default chain, timeouts fit for
//! `GetActivityTask` long polls held 60 s), and the Step Functions client pointed at AWS or at a
//! local endpoint (the local engine, a test's server) with placeholder credentials.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sfn::config::{Credentials, Region, SharedCredentialsProvider};

/// The region used against a local endpoint when none is configured.
const LOCAL_REGION: &str = "us-east-1";

/// The read timeout of [`local_sfn_client`] and [`connect`]: above the 60 s a long poll is held.
const LOCAL_READ_TIMEOUT: Duration = Duration::from_secs(70);

/// The shared AWS configuration: the default chain (environment, profile, SSO, instance role),
/// `region` when given, and timeouts fit for long polls (give `read_timeout` ≥ 65 s).
pub async fn load_sdk_config(
    region: Option<&str>,
    read_timeout: Duration,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(read_timeout)
            .operation_attempt_timeout(read_timeout + Duration::from_secs(5))
            .build(),
    );
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    loader.load().await
}

/// Placeholder credentials: the local engine does not check signatures, but the SDK signs.
fn placeholder_credentials() -> Credentials {
    Credentials::new(
        "stepops-local",
        "stepops-local",
        None,
        None,
        "stepops-local",
    )
}

/// `config` as is, or with `endpoint` (the local engine, a test's server) and placeholder
/// credentials, in `us-east-1` unless `config` has a region.
fn with_endpoint(config: &aws_config::SdkConfig, endpoint: Option<&str>) -> aws_config::SdkConfig {
    let Some(endpoint) = endpoint else {
        return config.clone();
    };
    let mut builder = config
        .to_builder()
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(placeholder_credentials()));
    if config.region().is_none() {
        builder = builder.region(Region::new(LOCAL_REGION));
    }
    builder.build()
}

/// The Step Functions client from `config`. With `endpoint` (the local engine, a test's
/// server), requests go there, signed with placeholder credentials, in `us-east-1` unless
/// `config` has a region.
pub fn sfn_client(config: &aws_config::SdkConfig, endpoint: Option<&str>) -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::new(&with_endpoint(config, endpoint))
}

/// A client for a local endpoint with long-poll timeouts and no AWS configuration at all
/// (nothing is read from the environment or instance metadata): for tests and embedders.
pub fn local_sfn_client(endpoint: &str) -> aws_sdk_sfn::Client {
    let config = aws_sdk_sfn::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(LOCAL_REGION))
        .credentials_provider(placeholder_credentials())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(LOCAL_READ_TIMEOUT)
                .build(),
        )
        .build();
    aws_sdk_sfn::Client::from_conf(config)
}

/// The CloudWatch Logs client from `config` (a runner ships job output with it); with
/// `endpoint` (the local engine's stand-in), requests go there, as for [`sfn_client`].
pub fn logs_client(
    config: &aws_config::SdkConfig,
    endpoint: Option<&str>,
) -> aws_sdk_cloudwatchlogs::Client {
    aws_sdk_cloudwatchlogs::Client::new(&with_endpoint(config, endpoint))
}

/// A CloudWatch Logs client for the local engine's stand-in at `endpoint`, with no AWS
/// configuration at all (as [`local_sfn_client`]).
pub fn local_logs_client(endpoint: &str) -> aws_sdk_cloudwatchlogs::Client {
    let config = aws_sdk_cloudwatchlogs::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(LOCAL_REGION))
        .credentials_provider(placeholder_credentials())
        .build();
    aws_sdk_cloudwatchlogs::Client::from_conf(config)
}

/// The CloudFormation client from `config`; with `endpoint` (a test's server), requests go
/// there with placeholder credentials, as for [`sfn_client`].
pub fn cloudformation_client(
    config: &aws_config::SdkConfig,
    endpoint: Option<&str>,
) -> aws_sdk_cloudformation::Client {
    aws_sdk_cloudformation::Client::new(&with_endpoint(config, endpoint))
}

/// The caller's IAM identity (`sts:GetCallerIdentity`, which needs no permission): its ARN,
/// recorded as the `startedBy` of what a command starts; the error's text when STS cannot be
/// asked.
pub async fn caller_arn(config: &aws_config::SdkConfig) -> Result<Option<String>, String> {
    aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map(|out| out.arn().map(str::to_owned))
        .map_err(|e| aws_sdk_sts::error::DisplayErrorContext(&e).to_string())
}

/// The Step Functions client a command line uses: [`local_sfn_client`] at `endpoint`, else AWS
/// through the default chain in `region` (or the configured one). AWS's configuration is
/// returned too, for the other clients a command needs (CloudFormation, STS).
pub async fn connect(
    endpoint: Option<&str>,
    region: Option<&str>,
) -> (aws_sdk_sfn::Client, Option<aws_config::SdkConfig>) {
    match endpoint {
        Some(endpoint) => (local_sfn_client(endpoint), None),
        None => {
            let config = load_sdk_config(region, LOCAL_READ_TIMEOUT).await;
            (sfn_client(&config, None), Some(config))
        }
    }
}
