//! A small blocking JSON-over-HTTP client for the judge and scorer endpoints: per-request
//! timeout, retries with exponential back-off on transient failures (connection errors,
//! timeouts, 429 and 5xx answers), and a worker pool that runs many requests at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::error::{CurateError, Result};

/// How requests are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HttpOptions {
    /// Time limit of one request.
    pub timeout: Duration,
    /// Retries after a transient failure (so `1 + retries` attempts at most).
    pub retries: usize,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            retries: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// A JSON client (see the module doc).
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::blocking::Client,
    opts: HttpOptions,
}

/// One failed attempt: whether another may succeed, and why it failed.
struct Failure {
    transient: bool,
    message: String,
}

impl Http {
    /// A client with `opts`, sending `Authorization: Bearer <api_key>` with every request when
    /// a key is given.
    pub fn new(opts: HttpOptions, api_key: Option<&str>) -> Result<Self> {
        let failed = |message: String| CurateError::Remote {
            endpoint: "(http client)".into(),
            message,
        };
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = api_key {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| failed("the API key is not a valid header value".into()))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(opts.timeout)
            .default_headers(headers)
            .build()
            .map_err(|e| failed(e.to_string()))?;
        Ok(Self { client, opts })
    }

    /// `POST url` with a JSON body; the answer's JSON body (after retries).
    pub fn post_json(&self, url: &str, body: &Value) -> Result<Value> {
        let text = body.to_string();
        self.with_retries(url, || {
            self.client
                .post(url)
                .header("content-type", "application/json")
                .body(text.clone())
                .send()
        })
    }

    /// `GET url`; the answer's JSON body (after retries).
    pub fn get_json(&self, url: &str) -> Result<Value> {
        self.with_retries(url, || self.client.get(url).send())
    }

    fn with_retries(
        &self,
        url: &str,
        send: impl Fn() -> reqwest::Result<reqwest::blocking::Response>,
    ) -> Result<Value> {
        let mut wait = self.opts.backoff;
        let mut attempt = 0;
        loop {
            match once(send()) {
                Ok(v) => return Ok(v),
                Err(f) if f.transient && attempt < self.opts.retries => {
                    attempt += 1;
                    std::thread::sleep(wait);
                    wait = wait.saturating_mul(2);
                }
                Err(f) => {
                    let tries = if attempt > 0 {
                        format!(" (after {} attempts)", attempt + 1)
                    } else {
                        String::new()
                    };
                    return Err(CurateError::Remote {
                        endpoint: url.to_string(),
                        message: format!("{}{tries}", f.message),
                    });
                }
            }
        }
    }
}

/// One attempt's answer as JSON, or how it failed.
fn once(sent: reqwest::Result<reqwest::blocking::Response>) -> std::result::Result<Value, Failure> {
    let resp = sent.map_err(|e| Failure {
        transient: true,
        message: describe(&e),
    })?;
    let status = resp.status();
    let body = resp.text().map_err(|e| Failure {
        transient: true,
        message: describe(&e),
    })?;
    if !status.is_success() {
        let transient = status.as_u16() == 429 || status.is_server_error();
        let mut excerpt: String = body.chars().take(300).collect();
        if excerpt.len() < body.len() {
            excerpt.push('…');
        }
        return Err(Failure {
            transient,
            message: format!("HTTP {status}: {excerpt}"),
        });
    }
    serde_json::from_str(&body).map_err(|e| Failure {
        transient: false,
        message: format!("the answer is not JSON ({e})"),
    })
}

/// An error's message with its causes (reqwest's own message is terse).
fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// `f` over every item with up to `workers` threads; results in item order.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    slots
        .into_iter()
        .filter_map(|m| m.into_inner().ok().flatten())
        .collect()
}

/// The chat-completions URL of an OpenAI-compatible server given as `http://host:port`,
/// `…/v1` or the full `…/v1/chat/completions`.
pub fn chat_completions_url(base: &str) -> String {
    let b = base.trim_end_matches('/');
    if b.ends_with("/chat/completions") {
        b.to_string()
    } else if b.ends_with("/v1") {
        format!("{b}/chat/completions")
    } else {
        format!("{b}/v1/chat/completions")
    }
}

/// The model-list URL of the same server as [`chat_completions_url`].
pub fn models_url(base: &str) -> String {
    let c = chat_completions_url(base);
    format!("{}/models", c.trim_end_matches("/chat/completions"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::Arc;

    #[test]
    fn urls() {
        for base in [
            "http://h:1",
            "http://h:1/",
            "http://h:1/v1",
            "http://h:1/v1/chat/completions",
        ] {
            assert_eq!(chat_completions_url(base), "http://h:1/v1/chat/completions");
            assert_eq!(models_url(base), "http://h:1/v1/models");
        }
    }

    #[test]
    fn parallel_map_keeps_order() {
        let items: Vec<u32> = (0..50).collect();
        let out = parallel_map(&items, 4, |x| x * 2);
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert!(parallel_map(&Vec::<u32>::new(), 4, |x| *x).is_empty());
    }

    /// A server answering the k-th request with `replies[k]` (status, body); also counts them.
    fn serve(
        replies: Vec<(u16, &'static str)>,
    ) -> (super::super::fake_server::FakeServer, Arc<AtomicUsize>) {
        let n = Arc::new(AtomicUsize::new(0));
        let count = n.clone();
        let server = super::super::fake_server::spawn(move |_, _, _| {
            let k = count.fetch_add(1, Ordering::SeqCst);
            let (status, body) = replies[k.min(replies.len() - 1)];
            (status, body.to_string())
        });
        (server, n)
    }

    fn quick() -> Http {
        Http::new(
            HttpOptions {
                timeout: Duration::from_secs(10),
                retries: 2,
                backoff: Duration::from_millis(1),
            },
            None,
        )
        .unwrap()
    }

    #[test]
    fn sends_the_api_key_as_a_bearer_token() {
        let server = super::super::fake_server::spawn(|_, headers, _| {
            let auth = headers
                .lines()
                .any(|l| l.eq_ignore_ascii_case("authorization: Bearer s3cret"));
            (if auth { 200 } else { 401 }, "{}".into())
        });
        let opts = HttpOptions::default();
        assert!(Http::new(opts, Some("s3cret"))
            .unwrap()
            .get_json(&server.url)
            .is_ok());
        let e = Http::new(opts, None)
            .unwrap()
            .get_json(&server.url)
            .unwrap_err();
        assert!(e.to_string().contains("401"), "{e}");
        assert!(Http::new(opts, Some("bad\nkey")).is_err());
    }

    #[test]
    fn retries_transient_failures_then_succeeds() {
        let (server, n) = serve(vec![
            (503, "busy"),
            (429, "slow down"),
            (200, "{\"ok\": 1}"),
        ]);
        let v = quick()
            .post_json(&server.url, &serde_json::json!({"x": 1}))
            .unwrap();
        assert_eq!(v["ok"], 1);
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn gives_up_after_the_retries_and_at_once_on_a_client_error() {
        let (server, n) = serve(vec![(500, "a"), (500, "b"), (500, "c"), (200, "{}")]);
        let e = quick().get_json(&server.url).unwrap_err().to_string();
        assert!(e.contains("500") && e.contains("after 3 attempts"), "{e}");
        assert_eq!(n.load(Ordering::SeqCst), 3);
        let (server, n) = serve(vec![(400, "{\"error\": \"bad field\"}")]);
        let e = quick().get_json(&server.url).unwrap_err().to_string();
        assert!(
            e.contains("400") && e.contains("bad field") && !e.contains("attempts"),
            "{e}"
        );
        assert_eq!(n.load(Ordering::SeqCst), 1);
        let (server, _) = serve(vec![(200, "not json")]);
        let e = quick().get_json(&server.url).unwrap_err().to_string();
        assert!(e.contains("not JSON"), "{e}");
        // nothing listening: a connection error, retried, then reported
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let e = quick().get_json(&dead).unwrap_err().to_string();
        assert!(e.contains(&dead) && e.contains("after 3 attempts"), "{e}");
    }
}
