//! Reads the GitHub App's key from Secrets Manager (the Lambda, and the CLI for a definition
//! naming `private_key_secret`). The value is never logged.

use crate::error::SyncError;

/// The string value of the secret `name`.
pub async fn read_secret(
    config: &aws_config::SdkConfig,
    name: String,
) -> Result<String, SyncError> {
    let out = aws_sdk_secretsmanager::Client::new(config)
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .map_err(|e| {
            SyncError::PrivateKey(format!(
                "cannot read the secret `{name}`: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))
        })?;
    out.secret_string()
        .map(str::to_owned)
        .ok_or_else(|| SyncError::PrivateKey(format!("the secret `{name}` has no string value")))
}
