//! Validated values: an admin task only ever puts these into a URL or a body, never raw input.
//!
//! Every parser is strict on purpose: the old shell scripts pasted arguments into URLs, so
//! `123/../../admin` or `123?x=1` reached the service. Here such input never leaves validation.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::error::AdminError;
pub use stepops_error::Environment;

/// The largest id the service accepts (ids are Java `long`s).
const MAX_ID: u64 = i64::MAX as u64;

/// Parses a positive decimal id: ASCII digits only, no sign, no leading zero, at most `i64::MAX`.
fn parse_positive_id(what: &str, raw: &str) -> Result<u64, AdminError> {
    if raw.is_empty() {
        return Err(AdminError::invalid(format!(
            "{what} is empty; give a positive decimal number such as 3350396"
        )));
    }
    if !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AdminError::invalid(format!(
            "{what} {} is not a positive decimal number (only the digits 0-9 are allowed)",
            quote(raw)
        )));
    }
    if raw.starts_with('0') {
        return Err(AdminError::invalid(format!(
            "{what} {} must be a positive number without leading zeros",
            quote(raw)
        )));
    }
    match raw.parse::<u64>() {
        Ok(n) if n <= MAX_ID => Ok(n),
        _ => Err(AdminError::invalid(format!(
            "{what} {} is too large (at most {MAX_ID})",
            quote(raw)
        ))),
    }
}

/// Quotes user input for an error message, escaping control characters and cutting it short.
pub(crate) fn quote(raw: &str) -> String {
    let cut: String = raw.chars().take(80).collect();
    let mut s = format!("{cut:?}");
    if raw.chars().count() > 80 {
        s.push('…');
    }
    s
}

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(u64);

        impl $name {
            /// Parses a decimal id (see the module documentation for the rules).
            pub fn parse(raw: &str) -> Result<Self, AdminError> {
                parse_positive_id($what, raw).map($name)
            }

            /// Builds an id from a number, refusing 0 and values above `i64::MAX`.
            pub fn new(n: u64) -> Result<Self, AdminError> {
                if n == 0 || n > MAX_ID {
                    return Err(AdminError::invalid(format!(
                        "{} {n} is out of range (1 to {MAX_ID})",
                        $what
                    )));
                }
                Ok($name(n))
            }

            /// The numeric value.
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0.to_string())
            }
        }
    };
}

numeric_id!(
    /// A Synapse user (principal) id, such as `3350396`.
    UserId,
    "user id"
);
numeric_id!(
    /// An OAuth 2.0 client id, such as `100001`.
    ClientId,
    "OAuth client id"
);

/// A Synapse entity id: `syn` followed by decimal digits. The prefix is accepted in any case
/// (the service does too) and always written as `syn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntityId(u64);

impl EntityId {
    /// Parses `syn123` (or `SYN123`); a bare number, a version suffix (`syn1.2`) or anything
    /// else is refused.
    pub fn parse(raw: &str) -> Result<Self, AdminError> {
        let digits = match raw.get(..3) {
            Some(prefix) if prefix.eq_ignore_ascii_case("syn") => &raw[3..],
            _ => {
                return Err(AdminError::invalid(format!(
                    "entity id {} must be `syn` followed by digits, such as syn12345678",
                    quote(raw)
                )));
            }
        };
        parse_positive_id("entity id number", digits)
            .map(EntityId)
            .map_err(|_| {
                AdminError::invalid(format!(
                    "entity id {} must be `syn` followed by a positive decimal number without leading zeros, such as syn12345678",
                    quote(raw)
                ))
            })
    }

    /// The numeric part.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "syn{}", self.0)
    }
}

impl Serialize for EntityId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An email address in a conservative subset of RFC 5321: a dot-atom local part (at most 64
/// octets) of letters, digits and ``!#$%&'*+/=?^_`{|}~-``, `@`, and a domain of at least two
/// dot-separated labels (letters, digits, inner hyphens; at most 63 octets each, 253 in all).
/// Quoted local parts, address literals and non-ASCII addresses are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses and checks an address; see the type's documentation for the accepted form.
    pub fn parse(raw: &str) -> Result<Self, AdminError> {
        let bad =
            |why: &str| AdminError::invalid(format!("email {} is not valid: {why}", quote(raw)));
        if raw.is_empty() {
            return Err(bad("it is empty"));
        }
        if !raw.is_ascii() {
            return Err(bad("only ASCII addresses are accepted"));
        }
        if raw.len() > 254 {
            return Err(bad("it is longer than 254 characters"));
        }
        let (local, domain) = raw.rsplit_once('@').ok_or_else(|| bad("it has no `@`"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(bad("the part before `@` must be 1 to 64 characters"));
        }
        let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
        if local
            .split('.')
            .any(|atom| atom.is_empty() || !atom.chars().all(atext))
        {
            return Err(bad(
                "the part before `@` may hold letters, digits and !#$%&'*+/=?^_`{|}~- in dot-separated runs",
            ));
        }
        if domain.len() > 253 {
            return Err(bad("the domain is longer than 253 characters"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(bad(
                "the domain needs at least two labels, such as example.org",
            ));
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(bad(
                    "each domain label must be 1 to 63 letters, digits or inner hyphens",
                ));
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(bad("the top-level domain cannot be numeric"));
        }
        Ok(Email(raw.to_owned()))
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Email {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A globally switchable feature, as the service's `org.sagebionetworks.repo.model.feature.Feature`
/// enumeration names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// Data access automatic reminders and revocation notifications.
    DataAccessNotifications,
    /// Automatic revocation of expired data access approvals.
    DataAccessAutoRevocation,
    /// Automatic cleanup of old multipart uploads.
    MultipartAutoCleanup,
}

impl Feature {
    /// All features, in the service's order.
    pub const ALL: [Feature; 3] = [
        Feature::DataAccessNotifications,
        Feature::DataAccessAutoRevocation,
        Feature::MultipartAutoCleanup,
    ];

    /// The name on the wire (`DATA_ACCESS_NOTIFICATIONS`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Feature::DataAccessNotifications => "DATA_ACCESS_NOTIFICATIONS",
            Feature::DataAccessAutoRevocation => "DATA_ACCESS_AUTO_REVOCATION",
            Feature::MultipartAutoCleanup => "MULTIPART_AUTO_CLEANUP",
        }
    }

    /// Parses the exact wire name.
    pub fn parse(raw: &str) -> Result<Self, AdminError> {
        Feature::ALL
            .into_iter()
            .find(|f| f.as_str() == raw)
            .ok_or_else(|| {
                let names: Vec<_> = Feature::ALL.iter().map(|f| f.as_str()).collect();
                AdminError::invalid(format!(
                    "feature {} is unknown; use one of {}",
                    quote(raw),
                    names.join(", ")
                ))
            })
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Feature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Parses exactly `dev` or `prod` into the shared [`Environment`].
pub fn parse_environment(raw: &str) -> Result<Environment, AdminError> {
    Environment::parse(raw).ok_or_else(|| {
        AdminError::invalid(format!(
            "environment {} is unknown; use `dev` or `prod`",
            quote(raw)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_plain_positive_numbers_only() {
        assert_eq!(UserId::parse("3350396").unwrap().get(), 3350396);
        assert_eq!(
            UserId::parse("9223372036854775807").unwrap().get(),
            i64::MAX as u64
        );
        for bad in [
            "",
            "0",
            "007",
            "-1",
            "+1",
            "1e3",
            " 1",
            "1 ",
            "9223372036854775808",
            "١٢٣",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(UserId::new(0).is_err());
    }

    #[test]
    fn entity_ids_need_the_syn_prefix() {
        assert_eq!(EntityId::parse("syn123").unwrap().to_string(), "syn123");
        assert_eq!(EntityId::parse("SYN123").unwrap().to_string(), "syn123");
        for bad in [
            "123", "syn", "syn-1", "syn1.2", "syn01", "xsyn1", "sy", "syn 1",
        ] {
            assert!(EntityId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn emails_follow_the_subset() {
        for good in [
            "a@example.org",
            "first.last+tag@sub.example.co.uk",
            "x_y-z@a-b.io",
        ] {
            assert!(Email::parse(good).is_ok(), "{good:?} should be accepted");
        }
        for bad in [
            "",
            "a",
            "@example.org",
            "a@",
            "a@localhost",
            "a..b@example.org",
            ".a@example.org",
            "a@-example.org",
            "a@example..org",
            "a b@example.org",
            "\"a\"@example.org",
            "a@[127.0.0.1]",
            "é@example.org",
            "a@example.123",
            "a@b@example.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn features_and_environments_are_exact() {
        assert_eq!(
            Feature::parse("MULTIPART_AUTO_CLEANUP").unwrap(),
            Feature::MultipartAutoCleanup
        );
        assert!(Feature::parse("multipart_auto_cleanup").is_err());
        assert_eq!(parse_environment("prod").unwrap(), Environment::Prod);
        assert!(parse_environment("Prod").is_err());
        assert!(parse_environment("staging").is_err());
    }
}
