//! The two environments a stack belongs to (`dev`, `prod`), and the words that mark a name as
//! belonging to one of them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One of the two environments a stack can belong to. They must never be confused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Development: may have several namespaced stacks.
    Dev,
    /// Production: exactly one stack.
    Prod,
}

impl Environment {
    /// Every environment, in documentation order.
    pub const ALL: [Environment; 2] = [Environment::Dev, Environment::Prod];

    /// `"dev"` or `"prod"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Environment::Dev => "dev",
            Environment::Prod => "prod",
        }
    }

    /// Parses `dev` / `prod` (exactly, lower case).
    pub fn parse(text: &str) -> Option<Environment> {
        Environment::ALL.into_iter().find(|e| e.as_str() == text)
    }

    /// Words that mark a name as belonging to this environment (`stepops/prod/db`).
    pub fn markers(self) -> &'static [&'static str] {
        match self {
            Environment::Dev => &["dev", "development"],
            Environment::Prod => &["prod", "production", "prd"],
        }
    }

    /// Whether `name` carries one of this environment's markers as a word (`stepops/prod/db`,
    /// `prod-db`, `/stepops/production/url`).
    pub fn is_named_in(self, name: &str) -> bool {
        name.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| self.markers().contains(&word.to_ascii_lowercase().as_str()))
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly_and_finds_markers() {
        assert_eq!(Environment::parse("prod"), Some(Environment::Prod));
        assert_eq!(Environment::parse("Prod"), None);
        assert_eq!(Environment::parse("staging"), None);
        assert!(Environment::Prod.is_named_in("stepops/production/db"));
        assert!(Environment::Prod.is_named_in("PRD-db"));
        assert!(!Environment::Prod.is_named_in("stepops/product/db"));
        assert!(Environment::Dev.is_named_in("/stepops/dev/url"));
        assert_eq!(serde_json::to_string(&Environment::Dev).unwrap(), "\"dev\"");
    }
}
