//! Nothing a client sends crashes the server: random JSON values, request objects with random
//! field types and values, and random bytes, sent to every route in-process (the router driven
//! with `tower::ServiceExt::oneshot`, no sockets). Every answer is a 2xx with a well-formed body
//! or a 4xx with an OpenAI-style error body; the server still answers afterwards. The case count
//! is bounded for CI (generation is capped at 2 tokens per request).

mod common;

use adasamp_serve::Server;
use axum::body::Body;
use axum::http::{Method, Request};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

/// Field names the endpoints know, plus a few they do not.
const FIELDS: &[&str] = &[
    "model",
    "prompt",
    "messages",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "stream",
    "stream_options",
    "logprobs",
    "top_logprobs",
    "sampler",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "typical_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "top_n_sigma",
    "xtc_probability",
    "xtc_threshold",
    "dry_multiplier",
    "dry_base",
    "dry_allowed_length",
    "dry_penalty_last_n",
    "dry_sequence_breakers",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "min_tokens",
    "logit_bias",
    "user",
    "echo",
    "best_of",
    "suffix",
    "bogus",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-3i64..40).prop_map(|i| json!(i)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (-2.0f64..3.0).prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        Just(json!("../../etc/passwd")),
        Just(json!({"include_usage": true})),
        Just(json!([{"role": "user", "content": "hi"}])),
        Just(json!({"5": -100, "x": 1})),
        Just(json!([1, 2, 3])),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A request object: mostly known fields with random values, a valid prompt most of the time.
fn request_object() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map(prop::sample::select(FIELDS), json_value(), 0..8),
        any::<bool>(),
    )
        .prop_map(|(m, with_prompt)| {
            let mut o: Map<String, Value> =
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            if with_prompt {
                o.entry("prompt").or_insert(json!("Hello"));
                o.entry("messages")
                    .or_insert(json!([{"role": "user", "content": "Hello"}]));
                o.entry("max_tokens").or_insert(json!(2));
            }
            Value::Object(o)
        })
}

#[derive(Debug, Clone)]
enum RequestBody {
    Json(Value),
    Bytes(Vec<u8>),
}

fn body() -> impl Strategy<Value = RequestBody> {
    prop_oneof![
        3 => request_object().prop_map(RequestBody::Json),
        1 => json_value().prop_map(RequestBody::Json),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(RequestBody::Bytes),
    ]
}

/// Values a client might plausibly send for any field.
fn plausible() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..5).prop_map(|i| json!(i)),
        (0.0f64..1.0).prop_map(|f| json!(f)),
        any::<bool>().prop_map(Value::Bool),
        "[a-z ]{0,6}".prop_map(Value::String),
        Just(json!(["\n", "."])),
        Just(json!({"5": 2})),
        Just(json!({"include_usage": true})),
        Just(json!("cool")),
        leaf(),
    ]
}

/// A valid generation request for `path` with a few fields set to plausible values.
fn near_valid() -> impl Strategy<Value = (&'static str, bool, RequestBody)> {
    (
        prop::sample::select(&["/v1/completions", "/v1/chat/completions"][..]),
        prop::collection::btree_map(prop::sample::select(FIELDS), plausible(), 0..4),
    )
        .prop_map(|(path, extra)| {
            let mut o = if path == "/v1/completions" {
                json!({"prompt": "Hello", "max_tokens": 2})
            } else {
                json!({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2})
            };
            for (k, v) in extra {
                o[k] = v;
            }
            (path, true, RequestBody::Json(o))
        })
}

const PATHS: &[&str] = &[
    "/v1/completions",
    "/v1/chat/completions",
    "/v1/models",
    "/v1/samplers",
    "/health",
    "/metrics",
    "/v1/nothing",
];

#[test]
fn no_request_body_crashes_the_server() {
    let Some(model) = common::default_model() else {
        return;
    };
    let samplers = std::env::temp_dir().join(format!("adasamp-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&samplers).unwrap();
    std::fs::write(
        samplers.join("s.yaml"),
        "pipelines:\n  - name: cool\n    processors:\n      - {name: min_p, params: {min_p: 0.1}}\n",
    )
    .unwrap();
    let mut cfg = common::config(model);
    cfg.samplers_dir = Some(samplers.clone());
    cfg.max_tokens_cap = 2;
    cfg.max_running = 4;
    let server = Server::start(cfg).expect("server starts");
    let app = server.router();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cases = std::env::var("ADASAMP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(192);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    // (path, status) → count, to show what the run exercised.
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<(String, u16), u32>::new());
    runner
        .run(
            &prop_oneof![
                2 => near_valid(),
                2 => (prop::sample::select(PATHS), any::<bool>(), body()),
            ],
            |(path, post, body)| {
                let bytes = match &body {
                    RequestBody::Json(v) => v.to_string().into_bytes(),
                    RequestBody::Bytes(b) => b.clone(),
                };
                let req = Request::builder()
                    .method(if post { Method::POST } else { Method::GET })
                    .uri(path)
                    .header("content-type", "application/json")
                    .body(Body::from(bytes.clone()))
                    .unwrap();
                let (status, text) = rt.block_on(async {
                    let resp = app.clone().oneshot(req).await.unwrap();
                    let status = resp.status().as_u16();
                    let b = axum::body::to_bytes(resp.into_body(), 16 << 20)
                        .await
                        .unwrap();
                    (status, String::from_utf8_lossy(&b).into_owned())
                });
                *seen
                    .lock()
                    .unwrap()
                    .entry((path.to_string(), status))
                    .or_default() += 1;
                prop_assert!(
                    [200, 400, 404, 405, 413, 429].contains(&status),
                    "{status} for {path} {}: {text}",
                    String::from_utf8_lossy(&bytes)
                );
                if status >= 400 {
                    let v: Value = serde_json::from_str(&text)
                        .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
                    prop_assert!(v["error"]["message"].is_string(), "{text}");
                }
                if status == 200 && text.starts_with("data: ") {
                    prop_assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
                    prop_assert!(!text.contains("\"error\""), "{text}");
                }
                Ok(())
            },
        )
        .unwrap();
    let seen = seen.into_inner().unwrap();
    eprintln!("answers by (path, status): {seen:?}");
    // The generation routes were exercised past validation, not only refused.
    let generated: u32 = seen
        .iter()
        .filter(|((p, s), _)| p.starts_with("/v1/") && p.ends_with("completions") && *s == 200)
        .map(|(_, n)| n)
        .sum();
    assert!(generated > 0, "no request reached the engine: {seen:?}");
    // Still serving.
    let ok = rt.block_on(async {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/v1/completions")
            .body(Body::from(r#"{"prompt": "Hi", "max_tokens": 2}"#))
            .unwrap();
        app.clone().oneshot(req).await.unwrap().status().as_u16()
    });
    assert_eq!(ok, 200);
    let _ = std::fs::remove_dir_all(&samplers);
}
