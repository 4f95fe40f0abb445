//! Property tests over arbitrary text: the target parser, the URL parser and the redactor never
//! panic, and the redacted text never holds the password it hid.

use proptest::prelude::*;
use serde_json::json;
use stepops_error::{
    DatabaseUrl, Environment, StackEnvironment, TargetRef, check_inline_url, has_inline_password,
    redact,
};

/// Passwords as people write them in URLs: anything but the characters that end a URL's
/// authority in text (whitespace, quotes, `?`, `#`) and `*` (the mask itself).
const URL_PASSWORD: &str = "[A-Za-z0-9!$&()+,;=:@/._~%-]{8,24}";
/// Passwords in `password=…` (query strings, key/value strings): anything but the separators.
const KEYED_PASSWORD: &str = "[A-Za-z0-9!$()+,=:@/._~%?#-]{8,24}";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_parsers_and_the_redactor_never_panic(text in "\\PC*", key in "\\PC{0,12}") {
        let _ = redact(&text);
        let _ = DatabaseUrl::parse(&text);
        let _ = check_inline_url(&text);
        let _ = has_inline_password(&text);
        let _ = Environment::parse(&text);
        let _ = StackEnvironment::new(Environment::Dev, &text);
        let _ = TargetRef::from_json("source", Some(&json!({ key.clone(): text.clone() })));
        let _ = TargetRef::from_json("source", Some(&json!({ "url": text.clone() })));
        let _ = TargetRef::from_json("source", Some(&json!(text)));
    }

    #[test]
    fn arbitrary_bytes_as_text_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = redact(&text);
        let _ = DatabaseUrl::parse(&text);
    }

    #[test]
    fn a_url_password_never_survives_redaction(
        before in "\\PC{0,40}",
        after in "\\PC{0,40}",
        user in "[a-z][a-z0-9_]{0,10}",
        password in URL_PASSWORD,
        scheme in "(postgres|postgresql|https)",
    ) {
        let text = format!("{before} {scheme}://{user}:{password}@db.internal:5432/main {after}");
        let out = redact(&text);
        prop_assert!(!out.contains(&password), "{out}");
        if let Ok(url) = DatabaseUrl::parse(&format!("{scheme}://{user}:{password}@h/db")) {
            prop_assert!(!url.redacted().contains(&password));
            let debug = format!("{:?}", url);
            prop_assert!(!debug.contains(&password));
        }
    }

    #[test]
    fn a_keyed_password_never_survives_redaction(
        before in "\\PC{0,40}",
        after in "\\PC{0,40}",
        key in "(password|PASSWORD|passwd|token|access_token|client_secret|api_key)",
        sep in "[ ?&;]",
        password in KEYED_PASSWORD,
    ) {
        let text = format!("{before}{sep}{key}={password} {after}");
        let out = redact(&text);
        prop_assert!(!out.contains(&password), "{out}");
        let quoted = format!("{before} {key} = '{password} {password}' {after}");
        prop_assert!(!redact(&quoted).contains(&password));
    }

    #[test]
    fn a_target_error_never_holds_the_inline_password(password in URL_PASSWORD) {
        let url = format!("postgres://app:{password}@db/main");
        let err = TargetRef::from_json("source", Some(&json!({"url": url}))).unwrap_err();
        prop_assert!(!err.contains(&password), "{err}");
    }
}
