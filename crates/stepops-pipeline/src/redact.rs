//! Redaction of credentials that may travel inside error causes.

/// Replaces the password of every `scheme://user:password@host` URL and every
/// `password=…` / `token=…` query value in `text` with `***`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace, quote or end of text.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'' || c == '?')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    redact_query(&out)
}

fn redact_query(text: &str) -> String {
    const KEYS: [&str; 4] = ["password=", "passwd=", "token=", "secret="];
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let lower = text.to_ascii_lowercase();
    while i < text.len() {
        let hit = KEYS.iter().find(|k| {
            lower[i..].starts_with(**k)
                && (i == 0 || matches!(text.as_bytes()[i - 1], b'?' | b'&' | b' ' | b';'))
        });
        if let Some(key) = hit {
            out.push_str(&text[i..i + key.len()]);
            out.push_str("***");
            i += key.len();
            while i < text.len() && !matches!(text.as_bytes()[i], b'&' | b' ' | b'"' | b';') {
                i += 1;
            }
        } else {
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn hides_url_passwords_and_query_secrets() {
        assert_eq!(
            redact("cannot connect to postgres://app:s3cr3t@db.internal:5432/main: refused"),
            "cannot connect to postgres://app:***@db.internal:5432/main: refused"
        );
        assert_eq!(
            redact("host=db password=hunter2 user=x"),
            "host=db password=*** user=x"
        );
        assert_eq!(
            redact("postgres://db/main?user=a&password=p@ss&x=1"),
            "postgres://db/main?user=a&password=***&x=1"
        );
        assert_eq!(redact("sqlite:/tmp/a.db"), "sqlite:/tmp/a.db");
        assert_eq!(
            redact("https://hooks.example/abc and postgres://u@h/d"),
            "https://hooks.example/abc and postgres://u@h/d"
        );
        assert_eq!(redact("ünïcode password=x"), "ünïcode password=***");
    }
}
