//! CloudWatch Logs as stepops reads a job's output: the streams of a group under a prefix
//! (`DescribeLogStreams`, every page) and a stream's events from a forward token to its end
//! (`GetLogEvents`, every page). AWS and the local engine's stand-in alike.

use crate::SfnError;

/// The names of `group`'s streams that begin with `prefix`.
pub async fn log_stream_names(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    prefix: &str,
) -> Result<Vec<String>, SfnError> {
    let mut names = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = logs
            .describe_log_streams()
            .log_group_name(group)
            .log_stream_name_prefix(prefix)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| SfnError::call("DescribeLogStreams", e))?;
        names.extend(
            page.log_streams()
                .iter()
                .filter_map(|s| s.log_stream_name().map(str::to_owned)),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_owned()),
            _ => return Ok(names),
        }
    }
}

/// The messages of `stream` in `group` after `token` (from the head when `None`), oldest
/// first, and the forward token to read on from next time. The end is an empty page or a
/// forward token that does not move (how CloudWatch Logs says "nothing more yet").
pub async fn read_log_stream(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    mut token: Option<String>,
) -> Result<(Vec<String>, Option<String>), SfnError> {
    let mut messages = Vec::new();
    loop {
        let page = logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| SfnError::call("GetLogEvents", e))?;
        let next = page.next_forward_token().map(str::to_owned);
        messages.extend(
            page.events()
                .iter()
                .map(|e| e.message().unwrap_or_default().to_owned()),
        );
        let end = page.events().is_empty() || next == token;
        token = next.or(token);
        if end {
            return Ok((messages, token));
        }
    }
}
