//! The CloudWatch Logs stand-in through the real `aws-sdk-cloudwatchlogs` client: streams,
//! events in order, paging with the forward and backward tokens, and the errors CloudWatch
//! gives for a missing stream, a duplicate one and events out of order.

mod common;

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use common::config;
use stepops_local::LocalEngine;

fn logs(engine: &LocalEngine) -> Client {
    stepops_sfn::local_logs_client(&engine.endpoint().expect("serving"))
}

fn event(t: i64, m: &str) -> InputLogEvent {
    InputLogEvent::builder()
        .timestamp(t)
        .message(m)
        .build()
        .unwrap()
}

#[tokio::test]
async fn streams_take_events_in_order_and_page_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let engine = LocalEngine::start(config(dir.path())).await.unwrap();
    let c = logs(&engine);
    let (group, stream) = ("/stepops/dev/jobs", "stepops-dev-job/e1/0-deploy");

    let missing = c
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .log_events(event(1, "x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("ResourceNotFoundException"));

    c.create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
        .unwrap();
    let again = c
        .create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
        .unwrap_err();
    assert!(
        again
            .into_service_error()
            .is_resource_already_exists_exception()
    );
    for (i, batch) in [["a", "b"], ["c", "d"], ["e", "f"]].iter().enumerate() {
        let t = i as i64 * 10;
        c.put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .log_events(event(t, batch[0]))
            .log_events(event(t + 1, batch[1]))
            .send()
            .await
            .unwrap();
    }
    let disorder = c
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .log_events(event(50, "late"))
        .log_events(event(40, "early"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(disorder.code(), Some("InvalidParameterException"));

    // From the head, 4 at a time: a b c d, then e f, then nothing.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .limit(4)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        if page.events().is_empty() {
            break;
        }
        seen.push(
            page.events()
                .iter()
                .map(|e| e.message().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join(""),
        );
        token = page.next_forward_token().map(str::to_owned);
    }
    assert_eq!(seen, ["abcd", "ef"]);

    // Without a token and startFromHead: the last events; the backward token goes earlier.
    let last = c
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .limit(2)
        .send()
        .await
        .unwrap();
    let text = |p: &aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsOutput| {
        p.events()
            .iter()
            .map(|e| e.message().unwrap().to_owned())
            .collect::<String>()
    };
    assert_eq!(text(&last), "ef");
    let before = c
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .limit(2)
        .set_next_token(last.next_backward_token().map(str::to_owned))
        .send()
        .await
        .unwrap();
    assert_eq!(text(&before), "cd");
    assert_eq!(before.events()[0].timestamp(), Some(10));
    engine.shutdown().await;
}
