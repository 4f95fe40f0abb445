//! Whole runs against moto's S3 server and the fake GitHub: first sync, no change (zero
//! writes, no HEAD), change/add/remove, objects written by other tools (multipart, SSE-KMS),
//! include/exclude, delete on/off, a partial `DeleteObjects` failure, pagination, dry run, and
//! the GitHub and archive failures (each named, nothing written).

mod common;

use std::sync::atomic::Ordering;

use aws_sdk_s3::primitives::ByteStream;
use common::*;
use stepops_error::{ErrorName, Named};
use stepops_reposync::bench::{Counted, Requests};
use stepops_reposync::{AppKey, Definition, GitHubApp, S3Target, SyncReport, run_sync};

struct Env {
    _moto: Moto,
    gh: GitHub,
    client: aws_sdk_s3::Client,
    key_file: tempfile::NamedTempFile,
    work: tempfile::TempDir,
}

async fn env(files: &[(&str, &[u8])]) -> Env {
    let moto = moto().await;
    let gh = github(Serve::Zip(zipball(files))).await;
    let client = s3_client(&moto.endpoint);
    client
        .create_bucket()
        .bucket("site-bucket")
        .send()
        .await
        .unwrap();
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), KEY_PEM).unwrap();
    Env {
        _moto: moto,
        gh,
        client,
        key_file,
        work: tempfile::tempdir().unwrap(),
    }
}

impl Env {
    fn def(&self) -> Definition {
        definition(&self.gh.url, "site-bucket", "www/", self.key_file.path())
    }
    fn app(&self) -> GitHubApp {
        GitHubApp::new(&self.gh.url, APP_ID, 77, AppKey::from_pem(KEY_PEM).unwrap()).unwrap()
    }
    fn serve(&self, files: &[(&str, &[u8])]) {
        *self.gh.serve.lock().unwrap() = Serve::Zip(zipball(files));
    }
    async fn run_with(
        &self,
        def: &Definition,
        app: &GitHubApp,
        refuse: Vec<String>,
    ) -> (Result<SyncReport, stepops_reposync::SyncError>, Requests) {
        let filter = def.validate().unwrap();
        let s3 = S3Target::new(self.client.clone());
        let mut target = Counted::new(&s3);
        target.refuse_delete = refuse;
        let result = run_sync(def, &filter, app, &target, self.work.path()).await;
        (result, target.requests)
    }
    async fn run(&self, def: &Definition) -> (SyncReport, Requests) {
        let (r, c) = self.run_with(def, &self.app(), vec![]).await;
        (r.unwrap(), c)
    }
    async fn keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket("site-bucket")
            .into_paginator()
            .send();
        while let Some(p) = pages.next().await {
            out.extend(
                p.unwrap()
                    .contents()
                    .iter()
                    .map(|o| o.key().unwrap().to_owned()),
            );
        }
        out.sort();
        out
    }
    async fn body(&self, key: &str) -> Vec<u8> {
        let o = self
            .client
            .get_object()
            .bucket("site-bucket")
            .key(key)
            .send()
            .await
            .unwrap();
        o.body.collect().await.unwrap().into_bytes().to_vec()
    }
}

const FILES: &[(&str, &[u8])] = &[
    ("index.html", b"<h1>hello</h1>"),
    ("img/logo.jpg", b"\xff\xd8\xff jpeg bytes"),
    ("css/site.css", b"body{}"),
];

#[tokio::test]
async fn first_sync_then_no_change_makes_no_write_and_no_head() {
    let e = env(FILES).await;
    let def = e.def();
    let (r, c) = e.run(&def).await;
    assert_eq!(
        r.new,
        vec!["www/css/site.css", "www/img/logo.jpg", "www/index.html"]
    );
    assert_eq!(r.commit, COMMIT);
    assert!(r.manifest_written);
    assert_eq!(c.put.load(Ordering::SeqCst), 4, "3 files + the manifest");
    assert_eq!(e.body("www/index.html").await, b"<h1>hello</h1>");
    let head = e
        .client
        .head_object()
        .bucket("site-bucket")
        .key("www/img/logo.jpg")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("image/jpeg"));
    // No change: one listing, one GET of the manifest, nothing else.
    let (r, c) = e.run(&def).await;
    assert!(!r.changed(), "{r:?}");
    assert_eq!(r.unchanged, 3);
    assert_eq!(c.writes(), 0, "an unchanged branch makes no write");
    assert_eq!(c.heads(), 0, "the manifest answers for every object");
    assert_eq!(
        (c.list.load(Ordering::SeqCst), c.get.load(Ordering::SeqCst)),
        (1, 1)
    );
    assert!(!r.manifest_written);
}

#[tokio::test]
async fn one_changed_one_added_one_removed() {
    let e = env(FILES).await;
    let mut def = e.def();
    e.run(&def).await;
    // Same size, different content: found by the hash, not the size.
    e.serve(&[
        ("index.html", b"<h1>HELLO</h1>"),
        ("img/logo.jpg", b"\xff\xd8\xff jpeg bytes"),
        ("new.txt", b"new"),
    ]);
    let (r, c) = e.run(&def).await;
    assert_eq!(r.modified, vec!["www/index.html"]);
    assert_eq!(r.new, vec!["www/new.txt"]);
    assert_eq!(r.stale, vec!["www/css/site.css"], "delete_missing is off");
    assert!(r.deleted.is_empty());
    assert_eq!(c.delete.load(Ordering::SeqCst), 0);
    assert!(e.keys().await.contains(&"www/css/site.css".to_owned()));
    def.delete_missing = true;
    let (r, c) = e.run(&def).await;
    assert_eq!(r.deleted, vec!["www/css/site.css"]);
    assert_eq!(c.delete.load(Ordering::SeqCst), 1);
    assert_eq!(
        e.keys().await,
        vec![
            "www/.stepops-repo-sync.json",
            "www/img/logo.jpg",
            "www/index.html",
            "www/new.txt"
        ]
    );
    assert_eq!(e.body("www/index.html").await, b"<h1>HELLO</h1>");
}

#[tokio::test]
async fn dry_run_reports_the_plan_and_writes_nothing() {
    let e = env(FILES).await;
    let mut def = e.def();
    def.dry_run = true;
    let (r, c) = e.run(&def).await;
    assert_eq!(r.new.len(), 3);
    assert!(r.manifest_written, "it would write the manifest");
    assert_eq!(c.writes(), 0);
    assert!(e.keys().await.is_empty());
}

#[tokio::test]
async fn objects_written_by_other_tools_are_compared_by_checksum_or_multipart_etag() {
    let big: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect(); // 40,000 bytes
    let kms = b"kms encrypted content".to_vec();
    let files: Vec<(&str, &[u8])> = vec![
        ("big-2k.bin", &big),
        ("big-3k.bin", &big),
        ("kms.txt", &kms),
    ];
    let e = env(&files).await;
    // Another tool: multipart uploads with 2,048- and 3,072-byte parts (no checksum asked).
    for (key, part) in [("www/big-2k.bin", 2048usize), ("www/big-3k.bin", 3072)] {
        let up = e
            .client
            .create_multipart_upload()
            .bucket("site-bucket")
            .key(key)
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap();
        let mut parts = Vec::new();
        for (i, chunk) in big.chunks(part).enumerate() {
            let n = i as i32 + 1;
            let p = e
                .client
                .upload_part()
                .bucket("site-bucket")
                .key(key)
                .upload_id(id)
                .part_number(n)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await
                .unwrap();
            parts.push(
                aws_sdk_s3::types::CompletedPart::builder()
                    .part_number(n)
                    .e_tag(p.e_tag().unwrap())
                    .build(),
            );
        }
        // moto answers with a `CompleteMultipartUploadResponse` root the SDK does not decode;
        // the upload is complete all the same (checked by the HEAD below).
        let _ = e
            .client
            .complete_multipart_upload()
            .bucket("site-bucket")
            .key(key)
            .upload_id(id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        let etag = e
            .client
            .head_object()
            .bucket("site-bucket")
            .key(key)
            .send()
            .await
            .unwrap()
            .e_tag()
            .unwrap()
            .to_owned();
        assert!(etag.contains('-'), "a multipart ETag: {etag}");
    }
    // Another tool: SSE-KMS with a CRC64NVME checksum (what current AWS SDKs and CLIs send).
    e.client
        .put_object()
        .bucket("site-bucket")
        .key("www/kms.txt")
        .body(ByteStream::from(kms.clone()))
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc64Nvme)
        .send()
        .await
        .unwrap();
    let def = e.def();
    let (r, c) = e.run(&def).await;
    assert!(
        r.new.is_empty() && r.modified.is_empty(),
        "nothing re-uploaded: {r:?}"
    );
    assert_eq!(r.unchanged, 3);
    assert_eq!(c.put.load(Ordering::SeqCst), 1, "only the manifest");
    assert!(c.heads() >= 3);
    // The next run knows them from the manifest.
    let (r, c) = e.run(&def).await;
    assert_eq!((c.writes(), c.heads(), r.unchanged), (0, 0, 3));
    // A same-size change of a multipart object is found.
    let mut changed = big.clone();
    changed[39_999] ^= 1;
    e.serve(&[
        ("big-2k.bin", &changed),
        ("big-3k.bin", &big),
        ("kms.txt", &kms),
    ]);
    let (r, _) = e.run(&def).await;
    assert_eq!(r.modified, vec!["www/big-2k.bin"]);
}

#[tokio::test]
async fn sse_kms_objects_without_checksum_are_uploaded_once_then_known() {
    let e = env(&[("a.txt", b"aaa")]).await;
    e.client
        .put_object()
        .bucket("site-bucket")
        .key("www/a.txt")
        .body(ByteStream::from(b"aaa".to_vec()))
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .send()
        .await
        .unwrap();
    let def = e.def();
    let (r, _) = e.run(&def).await;
    // Its ETag is not an MD5 and it has no checksum: it cannot be compared, so it is written
    // once with a SHA-256 ...
    assert_eq!(r.modified, vec!["www/a.txt"]);
    // ... and never again.
    let (r, c) = e.run(&def).await;
    assert_eq!((c.writes(), r.unchanged), (0, 1));
}

#[tokio::test]
async fn include_and_exclude_exclude_wins() {
    let e = env(&[
        ("docs/a.md", b"a"),
        ("docs/secret.md", b"s"),
        ("src/x.rs", b"x"),
    ])
    .await;
    let mut def = e.def();
    def.include = vec!["^docs/".into()];
    def.exclude = vec!["secret".into()];
    def.delete_missing = true;
    // An excluded key already in the prefix is left alone, not deleted.
    e.client
        .put_object()
        .bucket("site-bucket")
        .key("www/docs/secret.md")
        .body(ByteStream::from(b"old".to_vec()))
        .send()
        .await
        .unwrap();
    let (r, _) = e.run(&def).await;
    assert_eq!(r.new, vec!["www/docs/a.md"]);
    assert!(r.deleted.is_empty());
    assert_eq!(
        e.keys().await,
        vec![
            "www/.stepops-repo-sync.json",
            "www/docs/a.md",
            "www/docs/secret.md"
        ]
    );
    assert_eq!(e.body("www/docs/secret.md").await, b"old");
}

#[tokio::test]
async fn a_partial_delete_failure_is_reported_after_the_other_writes() {
    let e = env(&[("keep.txt", b"k")]).await;
    for k in ["www/gone1.txt", "www/gone2.txt"] {
        e.client
            .put_object()
            .bucket("site-bucket")
            .key(k)
            .body(ByteStream::from(b"x".to_vec()))
            .send()
            .await
            .unwrap();
    }
    let mut def = e.def();
    def.delete_missing = true;
    let (r, _) = e
        .run_with(&def, &e.app(), vec!["www/gone2.txt".into()])
        .await;
    let r = r.unwrap();
    assert_eq!(r.deleted, vec!["www/gone1.txt"]);
    assert_eq!(r.new, vec!["www/keep.txt"]);
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    assert!(r.failures[0].contains("www/gone2.txt") && r.failures[0].contains("AccessDenied"));
    let err = r.into_result().unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Unauthorized, "{err}");
    assert!(e.keys().await.contains(&"www/gone2.txt".to_owned()));
}

#[tokio::test]
async fn more_than_1000_keys_are_listed_and_deleted_in_batches() {
    let e = env(&[("only.txt", b"o")]).await;
    let client = e.client.clone();
    // 16 at a time: 1,105 connections at once overflow moto's listen queue on a busy machine
    // (the SDK's 3.1 s connect timeout was seen to expire).
    futures::StreamExt::for_each_concurrent(futures::stream::iter(0..1105), 16, |i| {
        let client = client.clone();
        async move {
            client
                .put_object()
                .bucket("site-bucket")
                .key(format!("www/old/{i:05}.txt"))
                .body(ByteStream::from(b"x".to_vec()))
                .send()
                .await
                .unwrap();
        }
    })
    .await;
    let mut def = e.def();
    def.delete_missing = true;
    let (r, c) = e.run(&def).await;
    assert_eq!(r.deleted.len(), 1105, "every page of the listing was read");
    assert_eq!(c.delete.load(Ordering::SeqCst), 2, "1000 + 105");
    assert_eq!(
        e.keys().await,
        vec!["www/.stepops-repo-sync.json", "www/only.txt"]
    );
}

#[tokio::test]
async fn the_installation_token_is_cached() {
    let e = env(FILES).await;
    let def = e.def();
    let app = e.app();
    e.run_with(&def, &app, vec![]).await.0.unwrap();
    e.run_with(&def, &app, vec![]).await.0.unwrap();
    assert_eq!(e.gh.token_requests.load(Ordering::SeqCst), 1);
    assert_eq!(e.gh.downloads.load(Ordering::SeqCst), 2);
}

/// A run that must fail with `name`, writing nothing.
async fn fails(e: &Env, def: &Definition, name: ErrorName, what: &str) {
    let (r, c) = e.run_with(def, &e.app(), vec![]).await;
    let err = r.expect_err(what);
    assert_eq!(err.error_name(), name, "{what}: {err}");
    assert!(!err.to_string().contains(TOKEN), "the token never shows");
    assert_eq!(c.writes(), 0, "{what}: nothing written");
    assert!(e.keys().await.is_empty(), "{what}");
}

#[tokio::test]
async fn github_and_archive_failures_are_named_and_write_nothing() {
    let e = env(FILES).await;
    let mut def = e.def();
    *e.gh.serve.lock().unwrap() = Serve::Unauthorized;
    fails(&e, &def, ErrorName::Unauthorized, "401").await;
    e.serve(FILES);
    def.branch = "no-such-branch".into();
    fails(&e, &def, ErrorName::NotFound, "404 branch").await;
    def.branch = "main".into();
    let full = zipball(FILES);
    *e.gh.serve.lock().unwrap() = Serve::Zip(full[..full.len() / 2].to_vec());
    fails(&e, &def, ErrorName::Transient, "truncated archive").await;
    e.serve(FILES);
    def.max_archive_bytes = 100;
    fails(&e, &def, ErrorName::InvalidInput, "archive over the limit").await;
    def.max_archive_bytes = 1 << 20;
    for (name, entries) in [
        (
            "dotdot",
            vec![
                ("acme-site-0123456/ok.txt".to_owned(), b"ok".to_vec(), false),
                (
                    "acme-site-0123456/../../evil.txt".to_owned(),
                    b"x".to_vec(),
                    false,
                ),
            ],
        ),
        (
            "absolute",
            vec![("/etc/evil".to_owned(), b"x".to_vec(), false)],
        ),
        (
            "link out",
            vec![(
                "acme-site-0123456/l".to_owned(),
                b"../../etc/passwd".to_vec(),
                true,
            )],
        ),
        (
            "two tops",
            vec![
                ("a/x".to_owned(), b"x".to_vec(), false),
                ("b/y".to_owned(), b"y".to_vec(), false),
            ],
        ),
    ] {
        *e.gh.serve.lock().unwrap() = Serve::Zip(zip_raw(entries));
        let (r, c) = e.run_with(&def, &e.app(), vec![]).await;
        let err = r.expect_err(name);
        assert!(
            matches!(err, stepops_reposync::SyncError::UnsafeArchive { .. }),
            "{name}: {err}"
        );
        assert_eq!(err.error_name(), ErrorName::InvalidInput);
        assert_eq!(c.writes(), 0, "{name}");
    }
    assert!(e.keys().await.is_empty());
}
