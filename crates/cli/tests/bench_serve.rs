//! `adasamp bench-serve` against a small fake OpenAI server in this test (a raw tokio TCP
//! listener on a loopback port) that streams a known number of tokens with known gaps, refuses or
//! cuts off the requests whose prompt asks for it, and splits events across writes.

mod common;

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{adasamp, stderr, stdout, tmpdir};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the fake server streams.
#[derive(Clone, Copy)]
struct Fake {
    /// Tokens per completed request (fewer if `max_tokens` asks for fewer).
    tokens: usize,
    /// Pause before each token.
    gap: Duration,
}

/// Starts the fake server on a loopback port in a thread of its own; returns its base URL and its
/// count of completion requests received.
fn start(fake: Fake) -> (String, Arc<AtomicUsize>) {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, fake, &counter).await;
                });
            }
        });
    });
    let port = rx.recv().unwrap();
    (format!("http://127.0.0.1:{port}"), served)
}

/// Reads one request (head + Content-Length body) from `sock`.
async fn read_request(sock: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((head, buf[head_end..].to_vec()))
}

async fn respond_json(sock: &mut TcpStream, status: &str, body: &Value) -> std::io::Result<()> {
    let body = body.to_string();
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(msg.as_bytes()).await
}

async fn serve(mut sock: TcpStream, fake: Fake, served: &AtomicUsize) -> std::io::Result<()> {
    let (head, body) = read_request(&mut sock).await?;
    let line = head.lines().next().unwrap_or_default().to_string();
    if line.starts_with("GET /v1/models ") {
        let models = json!({"object": "list", "data": [{"id": "fake-model", "object": "model"}]});
        return respond_json(&mut sock, "200 OK", &models).await;
    }
    let chat = line.starts_with("POST /v1/chat/completions ");
    if !chat && !line.starts_with("POST /v1/completions ") {
        let err = json!({"error": {"message": format!("no route {line}"), "type": "not_found"}});
        return respond_json(&mut sock, "404 Not Found", &err).await;
    }
    served.fetch_add(1, Ordering::SeqCst);
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if req["model"] != "fake-model" || req["stream"] != true || req["min_p"] != 0.05 {
        let err = json!({"error": {"message": format!("unexpected request {req}"), "type": "invalid_request_error"}});
        return respond_json(&mut sock, "400 Bad Request", &err).await;
    }
    let prompt = if chat {
        req["messages"][0]["content"].as_str().unwrap_or_default()
    } else {
        req["prompt"].as_str().unwrap_or_default()
    };
    if prompt.contains("FAIL") {
        let err = json!({"error": {"message": "overloaded", "type": "server_error"}});
        return respond_json(&mut sock, "503 Service Unavailable", &err).await;
    }
    let n = fake
        .tokens
        .min(req["max_tokens"].as_u64().unwrap_or(u64::MAX) as usize);
    sock.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
    )
    .await?;
    let event = |v: Value| format!("data: {v}\n\n");
    if chat {
        let role =
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]});
        sock.write_all(event(role).as_bytes()).await?;
    }
    for k in 0..n {
        tokio::time::sleep(fake.gap).await;
        let piece = format!("tok{k} ");
        let chunk = if chat {
            json!({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]})
        } else {
            json!({"choices": [{"index": 0, "text": piece, "finish_reason": null}]})
        };
        let text = event(chunk);
        if k % 2 == 1 {
            // An event split across two writes (and so, usually, two reads).
            let (a, b) = text.split_at(text.len() / 2);
            sock.write_all(a.as_bytes()).await?;
            sock.flush().await?;
            tokio::time::sleep(Duration::from_millis(2)).await;
            sock.write_all(b.as_bytes()).await?;
        } else {
            sock.write_all(text.as_bytes()).await?;
        }
        sock.flush().await?;
        if prompt.contains("TRUNCATE") {
            return Ok(()); // the connection closes without [DONE]
        }
    }
    // Finish chunk, usage (chat only: completions are counted from the token chunks) and [DONE]
    // in one write.
    let mut tail = event(
        json!({"choices": [{"index": 0, "delta": {}, "text": "", "finish_reason": "length"}]}),
    );
    if chat && req["stream_options"]["include_usage"] == true {
        tail.push_str(&event(json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": n + 3}})));
    }
    tail.push_str("data: [DONE]\n\n");
    sock.write_all(tail.as_bytes()).await?;
    sock.flush().await
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn counts_tokens_and_errors_against_a_fake_server() {
    let (url, served) = start(Fake {
        tokens: 5,
        gap: Duration::from_millis(15),
    });
    let dir = tmpdir("bench-serve-errors");
    let prompts = dir.join("prompts.txt");
    let mut f = std::fs::File::create(&prompts).unwrap();
    writeln!(f, "ok a\n\nFAIL b\nok c\n  TRUNCATE d  ").unwrap();
    let out = dir.join("r.json");
    let o = adasamp(&[
        "bench-serve",
        "--url",
        &url,
        "--prompts",
        prompts.to_str().unwrap(),
        "--concurrency",
        "1,2",
        "--requests",
        "8",
        "--warmup",
        "0",
        "--max-tokens",
        "64",
        "--extra",
        r#"{"min_p":0.05}"#,
        "--json",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "errors must fail the run");
    assert!(
        stderr(&o).contains("8 of 16 requests failed"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("HTTP 503: overloaded"),
        "{}",
        stderr(&o)
    );
    assert_eq!(served.load(Ordering::SeqCst), 16);
    let r = read_json(&out);
    assert_eq!(r["model"], "fake-model", "model from /v1/models");
    for (level, clients) in r["levels"].as_array().unwrap().iter().zip([1, 2]) {
        assert_eq!(level["concurrency"], clients);
        assert_eq!(level["requests"], 8);
        assert_eq!(level["ok"], 4);
        assert_eq!(level["errors"], 4);
        assert_eq!(level["error_kinds"], json!({"http 503": 2, "truncated": 2}));
        // 4 completed requests × 5 tokens, as reported by usage.
        assert_eq!(level["generated_tokens"], 20);
        // One first token and 4 gaps per completed request; every gap follows a 15 ms pause.
        assert_eq!(level["ttft_ms"]["count"], 4);
        assert_eq!(level["itl_ms"]["count"], 16);
        assert!(level["ttft_ms"]["p50"].as_f64().unwrap() >= 10.0, "{level}");
        assert!(level["itl_ms"]["p50"].as_f64().unwrap() >= 10.0, "{level}");
        // 5 pauses of 15 ms before [DONE].
        assert!(
            level["latency_ms"]["p50"].as_f64().unwrap() >= 60.0,
            "{level}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn clean_run_prints_the_table_and_the_ratio() {
    let (url, served) = start(Fake {
        tokens: 5,
        gap: Duration::from_millis(5),
    });
    let dir = tmpdir("bench-serve-ok");
    let out = dir.join("r.json");
    let o = adasamp(&[
        "bench-serve",
        "--url",
        &format!("{url}/v1"),
        "--label",
        "fake",
        "--endpoint",
        "completions",
        "--model",
        "fake-model",
        "--prompt",
        "hello",
        "--concurrency",
        "1,3",
        "--requests",
        "3",
        "--max-tokens",
        "4",
        "--extra",
        r#"{"min_p":0.05}"#,
        "--json",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("| server | clients | requests | errors | req/s | gen tok/s | TTFT p50 | TTFT p99 | ITL p50 | ITL p99 | latency p50 |"),
        "{text}"
    );
    assert!(text.contains("| fake | 1 | 3 | 0 |"), "{text}");
    assert!(text.contains("| fake | 3 | 3 | 0 |"), "{text}");
    assert!(
        text.contains("3 vs 1 clients: aggregate gen tok/s ×"),
        "{text}"
    );
    // One warm-up request plus 3 per level.
    assert_eq!(served.load(Ordering::SeqCst), 7);
    let r = read_json(&out);
    assert_eq!(r["label"], "fake");
    assert_eq!(r["endpoint"], "completions");
    for level in r["levels"].as_array().unwrap() {
        // No usage on this endpoint: the 4 token chunks (max_tokens 4) of each request count.
        assert_eq!(level["generated_tokens"], 12, "{level}");
        assert_eq!(level["errors"], 0);
    }
    assert_eq!(r["ratio"]["from_concurrency"], 1);
    assert_eq!(r["ratio"]["to_concurrency"], 3);
    assert!(r["ratio"]["tokens_per_s"].as_f64().unwrap() > 0.0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn time_alone_bounds_a_level() {
    let (url, _) = start(Fake {
        tokens: 3,
        gap: Duration::from_millis(10),
    });
    let dir = tmpdir("bench-serve-time");
    let out = dir.join("r.json");
    let o = adasamp(&[
        "bench-serve",
        "--url",
        &url,
        "--concurrency",
        "2",
        "--duration",
        "0.5",
        "--extra",
        r#"{"min_p":0.05}"#,
        "--json",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let level = &read_json(&out)["levels"][0];
    assert!(level["requests"].as_u64().unwrap() >= 2, "{level}");
    assert_eq!(level["errors"], 0);
    // No request starts after 0.5 s; the last ones end a few gaps later.
    assert!(level["elapsed_s"].as_f64().unwrap() < 30.0, "{level}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_options_are_refused_before_any_load() {
    // (A non-loopback URL is refused by the same first check; unit-tested in loadgen::target so
    // that no test ever aims at an address off this machine.)
    for (args, msg) in [
        (vec!["--extra", "[1]"], "extra fields must be a JSON object"),
        (vec!["--extra", "{"], "extra fields are not valid JSON"),
        (vec!["--concurrency", "0,8"], "concurrency levels must be"),
        (vec!["--duration", "0"], "duration must be in"),
        (vec!["--requests", "0"], "requests per level must be"),
    ] {
        let mut all = vec!["bench-serve", "--url", "http://127.0.0.1:9"];
        all.extend(args);
        let o = adasamp(&all);
        assert!(!o.status.success(), "{all:?}");
        assert!(stderr(&o).contains(msg), "{all:?}: {}", stderr(&o));
    }
}

#[test]
fn an_unreachable_server_fails_the_warm_up_clearly() {
    // Bind then drop a listener: a loopback port with (very likely) nothing behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let o = adasamp(&["bench-serve", "--url", &url, "--model", "m"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("warm-up request"), "{}", stderr(&o));
}
