//! Bad definitions are refused with `Stepops.InvalidInput`, naming the field, before any
//! request (parsing and validation make none).

use stepops_error::{ErrorName, Named};
use stepops_reposync::parse_definitions;

const GOOD: &str = "organization: acme\nrepository: site\nbranch: main\napp_id: \"42\"\ninstallation_id: 7\nprivate_key_secret: stepops/dev/github-app-key\nbucket: acme-site\nregion: eu-west-1\nprefix: www/\n";

fn with(line_from: &str, line_to: &str) -> String {
    assert!(GOOD.contains(line_from), "{line_from}");
    GOOD.replace(line_from, line_to)
}

#[test]
fn the_good_one_passes() {
    let d = parse_definitions(GOOD).unwrap();
    assert_eq!(d[0].bucket, "acme-site");
    assert_eq!(
        parse_definitions(&format!("definitions:\n- {}", GOOD.replace('\n', "\n  ")))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn bad_definitions_are_refused_with_named_errors() {
    let cases: Vec<(String, &str)> = vec![
        (format!("{GOOD}colour: blue\n"), "colour"),
        (format!("{GOOD}include: [\"(unclosed\"]\n"), "include"),
        (format!("{GOOD}exclude: [\"*bad\"]\n"), "exclude"),
        (with("bucket: acme-site", "bucket: Acme_Site"), "bucket"),
        (with("bucket: acme-site", "bucket: ab"), "bucket"),
        (with("bucket: acme-site", "bucket: 192.168.1.10"), "bucket"),
        (with("bucket: acme-site", "bucket: xn--acme"), "bucket"),
        (with("bucket: acme-site", "bucket: acme..site"), "bucket"),
        (with("bucket: acme-site", "bucket: -acme"), "bucket"),
        (with("prefix: www/", "prefix: www/../other/"), "prefix"),
        (with("prefix: www/", "prefix: /www/"), "prefix"),
        (with("prefix: www/", "prefix: www"), "prefix"),
        (with("prefix: www/", "prefix: a//b/"), "prefix"),
        (with("app_id: \"42\"\n", ""), "app_id"),
        (with("app_id: \"42\"", "app_id: \"\""), "app_id"),
        (
            with("installation_id: 7", "installation_id: 0"),
            "installation_id",
        ),
        (
            with("organization: acme", "organization: \"ac me\""),
            "organization",
        ),
        (with("repository: site", "repository: \"..\""), "repository"),
        (with("branch: main", "branch: \"feature/../x\""), "branch"),
        (with("branch: main", "branch: \"\""), "branch"),
        (with("region: eu-west-1", "region: europe"), "region"),
        (
            with("private_key_secret: stepops/dev/github-app-key\n", ""),
            "private_key_secret",
        ),
        (
            format!("{GOOD}private_key_file: key.pem\n"),
            "private_key_file",
        ),
        (format!("{GOOD}max_archive_bytes: 0\n"), "max_archive_bytes"),
        (format!("{GOOD}timeout_seconds: 3600\n"), "timeout_seconds"),
        (
            format!("{GOOD}github_api: http://example.com\n"),
            "github_api",
        ),
        (format!("{GOOD}mode: tarball\n"), "mode"),
        (format!("{GOOD}mode: zip\ninclude: [\"^a\"]\n"), "include"),
        ("[]".into(), "no definition"),
        ("just text".into(), "mapping"),
    ];
    assert!(cases.len() >= 20);
    for (text, field) in cases {
        let err = parse_definitions(&text).expect_err(field);
        assert_eq!(err.error_name(), ErrorName::InvalidInput, "{field}: {err}");
        assert!(
            err.to_string().contains(field),
            "{field} is named in: {err}"
        );
    }
}
