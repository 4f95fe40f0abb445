//! Sources held in memory: [`MemorySecretSource`] (values given by the caller: local runs,
//! tests) and [`NoSecretSource`] (a reader that reads no secrets at all).

use std::collections::BTreeMap;

use crate::{Secret, SecretError, SecretSource};

/// Values by name, given up front; a name not given is [`SecretError::NotFound`].
#[derive(Clone, Debug, Default)]
pub struct MemorySecretSource {
    secrets: BTreeMap<String, Secret>,
    parameters: BTreeMap<String, Secret>,
}

impl MemorySecretSource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// This source with the secret `name` holding `value`.
    pub fn with_secret(mut self, name: &str, value: impl Into<String>) -> Self {
        self.secrets.insert(name.to_owned(), Secret::new(value));
        self
    }

    /// This source with the parameter `name` holding `value`.
    pub fn with_parameter(mut self, name: &str, value: impl Into<String>) -> Self {
        self.parameters.insert(name.to_owned(), Secret::new(value));
        self
    }
}

impl SecretSource for MemorySecretSource {
    async fn secret(&self, name: &str) -> Result<Secret, SecretError> {
        self.secrets
            .get(name)
            .cloned()
            .ok_or_else(|| SecretError::NotFound(format!("secret {name}")))
    }

    async fn parameter(&self, name: &str) -> Result<Secret, SecretError> {
        self.parameters
            .get(name)
            .cloned()
            .ok_or_else(|| SecretError::NotFound(format!("parameter {name}")))
    }
}

/// A source with no secrets (local runs, where targets are `{"url": …}`): every name is
/// `Stepops.NotFound`.
#[derive(Debug, Clone, Default)]
pub struct NoSecretSource;

impl SecretSource for NoSecretSource {
    async fn secret(&self, name: &str) -> Result<Secret, SecretError> {
        Err(SecretError::NotFound(format!(
            "secret {name} (this reader reads no secrets)"
        )))
    }
    async fn parameter(&self, name: &str) -> Result<Secret, SecretError> {
        Err(SecretError::NotFound(format!(
            "parameter {name} (this reader reads no secrets)"
        )))
    }
}
