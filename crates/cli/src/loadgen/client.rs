//! One streamed request and what was measured on it: time to the first token, the gaps between
//! tokens, the generated token count, or why it failed.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::sse::SseParser;
use super::wire::{error_body_message, parse_stream_data, StreamItem};

/// Why a request did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No connection, or the request could not be sent.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The request ran past its time limit.
    #[error("timed out")]
    Timeout,
    /// The server answered with a non-success status.
    #[error("HTTP {status}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The error body's message.
        message: String,
    },
    /// The stream reported an error, held a chunk that is not JSON, or broke off while reading.
    #[error("stream error: {0}")]
    Stream(String),
    /// The stream ended without `[DONE]`.
    #[error("stream ended without [DONE]")]
    Truncated,
}

impl RequestError {
    /// A short class name for counting errors: `connect`, `timeout`, `http 503`, `stream`,
    /// `truncated`.
    pub fn kind(&self) -> String {
        match self {
            RequestError::Connect(_) => "connect".into(),
            RequestError::Timeout => "timeout".into(),
            RequestError::Status { status, .. } => format!("http {status}"),
            RequestError::Stream(_) => "stream".into(),
            RequestError::Truncated => "truncated".into(),
        }
    }
}

/// What one request measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestOutcome {
    /// Time from sending the request to the first chunk carrying a token.
    pub ttft: Option<Duration>,
    /// Gaps between consecutive token-carrying chunks (each measured when its read arrived).
    pub inter_token: Vec<Duration>,
    /// Generated tokens: the server's `usage.completion_tokens` when reported, else the number of
    /// token-carrying chunks.
    pub tokens: u64,
    /// Time from sending the request to its end (`[DONE]` or the failure).
    pub latency: Duration,
    /// Why the request failed, if it did.
    pub error: Option<RequestError>,
}

/// Sends `body` to `url` as one streamed POST (with a bearer `api_key` if given) and measures it.
/// `timeout` bounds the whole request, body included.
pub async fn stream_request(
    client: &reqwest::Client,
    url: &str,
    api_key: Option<&str>,
    body: &Value,
    timeout: Duration,
) -> RequestOutcome {
    let start = Instant::now();
    let mut m = Measure::new(start);
    let err = run(client, url, api_key, body, timeout, &mut m).await.err();
    m.finish(err)
}

/// The measurements accumulated while a stream is read.
struct Measure {
    start: Instant,
    last_token: Option<Instant>,
    ttft: Option<Duration>,
    inter_token: Vec<Duration>,
    token_chunks: u64,
    usage_tokens: Option<u64>,
}

impl Measure {
    fn new(start: Instant) -> Self {
        Self {
            start,
            last_token: None,
            ttft: None,
            inter_token: Vec::new(),
            token_chunks: 0,
            usage_tokens: None,
        }
    }

    fn token_at(&mut self, t: Instant) {
        match self.last_token {
            None => self.ttft = Some(t - self.start),
            Some(prev) => self.inter_token.push(t - prev),
        }
        self.last_token = Some(t);
        self.token_chunks += 1;
    }

    /// Applies one event's data; `Ok(true)` at `[DONE]`.
    fn event(&mut self, data: &str, is_error: bool, t: Instant) -> Result<bool, RequestError> {
        if is_error {
            return Err(RequestError::Stream(error_body_message(data.as_bytes())));
        }
        match parse_stream_data(data).map_err(RequestError::Stream)? {
            StreamItem::Done => Ok(true),
            StreamItem::Error(msg) => Err(RequestError::Stream(msg)),
            StreamItem::Chunk {
                token,
                completion_tokens,
            } => {
                if token {
                    self.token_at(t);
                }
                if completion_tokens.is_some() {
                    self.usage_tokens = completion_tokens;
                }
                Ok(false)
            }
        }
    }

    fn finish(self, error: Option<RequestError>) -> RequestOutcome {
        RequestOutcome {
            ttft: self.ttft,
            inter_token: self.inter_token,
            tokens: self.usage_tokens.unwrap_or(self.token_chunks),
            latency: self.start.elapsed(),
            error,
        }
    }
}

fn transport(e: reqwest::Error) -> RequestError {
    if e.is_timeout() {
        RequestError::Timeout
    } else if e.is_connect() || e.is_request() {
        RequestError::Connect(error_chain(&e))
    } else {
        RequestError::Stream(error_chain(&e))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The largest error body read (the rest is ignored).
const MAX_ERROR_BODY: usize = 64 * 1024;

async fn run(
    client: &reqwest::Client,
    url: &str,
    api_key: Option<&str>,
    body: &Value,
    timeout: Duration,
    m: &mut Measure,
) -> Result<(), RequestError> {
    let mut req = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .body(body.to_string());
    if let Some(key) = api_key {
        req = req.bearer_auth(key);
    }
    let mut resp = req.send().await.map_err(transport)?;
    let status = resp.status();
    if !status.is_success() {
        let mut buf = Vec::new();
        while let Some(bytes) = resp.chunk().await.map_err(transport)? {
            buf.extend_from_slice(&bytes);
            if buf.len() >= MAX_ERROR_BODY {
                break;
            }
        }
        return Err(RequestError::Status {
            status: status.as_u16(),
            message: error_body_message(&buf),
        });
    }
    let mut parser = SseParser::new();
    while let Some(bytes) = resp.chunk().await.map_err(transport)? {
        let t = Instant::now();
        for ev in parser.push(&bytes) {
            if m.event(&ev.data, ev.event.as_deref() == Some("error"), t)? {
                return Ok(());
            }
        }
    }
    match parser.finish() {
        Some(ev)
            if m.event(
                &ev.data,
                ev.event.as_deref() == Some("error"),
                Instant::now(),
            )? =>
        {
            Ok(())
        }
        _ => Err(RequestError::Truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_counts_tokens_and_gaps_and_prefers_usage() {
        let t0 = Instant::now();
        let mut m = Measure::new(t0);
        let role = r#"{"choices":[{"delta":{"role":"assistant"}}]}"#;
        let tok = r#"{"choices":[{"delta":{"content":"a"}}]}"#;
        assert_eq!(
            m.event(role, false, t0 + Duration::from_millis(5)),
            Ok(false)
        );
        assert_eq!(
            m.event(tok, false, t0 + Duration::from_millis(10)),
            Ok(false)
        );
        assert_eq!(
            m.event(tok, false, t0 + Duration::from_millis(30)),
            Ok(false)
        );
        assert_eq!(
            m.event(tok, false, t0 + Duration::from_millis(60)),
            Ok(false)
        );
        assert_eq!(m.event("[DONE]", false, t0), Ok(true));
        let o = m.finish(None);
        assert_eq!(o.ttft, Some(Duration::from_millis(10)));
        assert_eq!(
            o.inter_token,
            vec![Duration::from_millis(20), Duration::from_millis(30)]
        );
        assert_eq!(o.tokens, 3);

        let mut m = Measure::new(t0);
        m.event(tok, false, t0).unwrap();
        m.event(
            r#"{"choices":[],"usage":{"completion_tokens":7}}"#,
            false,
            t0,
        )
        .unwrap();
        assert_eq!(m.finish(None).tokens, 7);
    }

    #[test]
    fn measure_reports_stream_errors() {
        let t0 = Instant::now();
        let mut m = Measure::new(t0);
        assert_eq!(
            m.event(r#"{"error":{"message":"boom"}}"#, false, t0),
            Err(RequestError::Stream("boom".into()))
        );
        assert_eq!(
            m.event(r#"{"message":"bad","code":500}"#, true, t0),
            Err(RequestError::Stream(
                r#"{"message":"bad","code":500}"#.into()
            ))
        );
        assert!(matches!(
            m.event("not json", false, t0),
            Err(RequestError::Stream(_))
        ));
    }

    #[test]
    fn error_kinds_are_short_classes() {
        assert_eq!(
            RequestError::Status {
                status: 429,
                message: "queue full".into()
            }
            .kind(),
            "http 429"
        );
        assert_eq!(RequestError::Truncated.kind(), "truncated");
        assert_eq!(RequestError::Timeout.kind(), "timeout");
    }
}
