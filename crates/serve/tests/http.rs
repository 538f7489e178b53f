//! The server over real HTTP on a loopback port (port 0, read back), with the default model:
//! completions, chat, streaming, n, logprobs, stop, named samplers, errors, queueing,
//! disconnects, determinism under concurrency and graceful shutdown. Skipped (with a note)
//! when the default model is not cached.

mod common;

use std::time::{Duration, Instant};

use common::{assert_error, get, metric, post, sse_data, TestServer};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_chat_models_health_and_metrics() {
    let Some(s) = TestServer::start(|_| {}).await else {
        return;
    };
    let c = client();
    let (st, body) = get(&c, &s.url("/health"), None).await;
    assert_eq!((st, body.as_str()), (200, "{\"status\":\"ok\"}"));
    let (st, body) = get(&c, &s.url("/v1/models"), None).await;
    assert_eq!(st, 200);
    let models: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(models["object"], "list");
    let model_id = models["data"][0]["id"].as_str().unwrap().to_string();
    assert!(model_id.contains("SmolLM2"), "{model_id}");

    // Completions, greedy.
    let (st, v) = post(
        &c,
        &s.url("/v1/completions"),
        r#"{"model": "x", "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}"#,
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["model"], model_id.as_str());
    let ch = &v["choices"][0];
    let text = ch["text"].as_str().unwrap().to_string();
    assert!(!text.is_empty());
    assert!(["stop", "length"].contains(&ch["finish_reason"].as_str().unwrap()));
    let u = &v["usage"];
    let completion = u["completion_tokens"].as_u64().unwrap();
    assert!((1..=8).contains(&completion), "{u}");
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + completion
    );

    // A stop string taken from that text cuts it there.
    if let Some(cut) = text.char_indices().nth(3).map(|(i, _)| i) {
        let stop = &text[cut..];
        let (st, v) = post(
            &c,
            &s.url("/v1/completions"),
            &json!({"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0,
                    "stop": [stop]})
            .to_string(),
            None,
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["choices"][0]["text"], &text[..cut]);
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
    }

    // Chat with a system message, n = 2, chat logprobs.
    let (st, v) = post(
        &c,
        &s.url("/v1/chat/completions"),
        r#"{"model": "x", "messages": [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a colour."}], "n": 2, "seed": 5,
            "max_tokens": 6, "logprobs": true, "top_logprobs": 3}"#,
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    let mut sum = 0;
    for (i, ch) in choices.iter().enumerate() {
        assert_eq!(ch["index"], i);
        assert_eq!(ch["message"]["role"], "assistant");
        assert!(ch["message"]["content"].is_string());
        let content = ch["logprobs"]["content"].as_array().unwrap();
        assert!(!content.is_empty() && content.len() <= 6);
        sum += content.len() as u64;
        for t in content {
            assert!(t["logprob"].as_f64().unwrap() <= 0.0);
            assert!(t["token"].is_string() && t["bytes"].is_array());
            assert_eq!(t["top_logprobs"].as_array().unwrap().len(), 3);
        }
    }
    assert_eq!(v["usage"]["completion_tokens"].as_u64().unwrap(), sum);

    // Completions logprobs: K.
    let (st, v) = post(
        &c,
        &s.url("/v1/completions"),
        r#"{"prompt": "1, 2, 3,", "max_tokens": 4, "logprobs": 2, "seed": 3}"#,
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let lp = &v["choices"][0]["logprobs"];
    let n = lp["tokens"].as_array().unwrap().len();
    assert_eq!(n as u64, v["usage"]["completion_tokens"].as_u64().unwrap());
    assert_eq!(lp["token_logprobs"].as_array().unwrap().len(), n);
    assert_eq!(lp["text_offset"].as_array().unwrap().len(), n);
    assert!(lp["top_logprobs"][0].as_object().unwrap().len() <= 2);

    // Every sampling field at once.
    let (st, v) = post(
        &c,
        &s.url("/v1/chat/completions"),
        r#"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "seed": 1,
            "temperature": 0.8, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "typical_p": 0.99,
            "repetition_penalty": 1.1, "presence_penalty": 0.1, "frequency_penalty": 0.1,
            "top_n_sigma": 2.0, "xtc_probability": 0.5, "xtc_threshold": 0.1,
            "dry_multiplier": 0.8, "dry_base": 1.75, "dry_allowed_length": 2,
            "dry_penalty_last_n": 64, "dry_sequence_breakers": ["\n", ":"],
            "min_tokens": 2, "logit_bias": {"28": -100}}"#,
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = post(
        &c,
        &s.url("/v1/chat/completions"),
        r#"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "seed": 1,
            "mirostat": 2, "mirostat_tau": 5.0, "mirostat_eta": 0.1}"#,
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");

    let (_, m) = get(&c, &s.url("/metrics"), None).await;
    assert!(
        m.contains("adasamp_requests_total{endpoint=\"/v1/completions\",status=\"200\"}"),
        "{m}"
    );
    assert!(metric(&m, "adasamp_time_to_first_token_seconds_count") >= 5.0);
    assert!(metric(&m, "adasamp_inter_token_latency_seconds_count") >= 1.0);
    assert!(metric(&m, "adasamp_generated_tokens_total") >= 10.0);
    assert!(metric(&m, "adasamp_prompt_tokens_total") >= 10.0);
    assert_eq!(metric(&m, "adasamp_running_sequences"), 0.0);
}

/// Reads a whole SSE response.
async fn stream_body(c: &reqwest::Client, url: &str, body: &str) -> String {
    let resp = c
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    resp.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_with_usage_matches_the_whole_answer() {
    let Some(s) = TestServer::start(|_| {}).await else {
        return;
    };
    let c = client();
    let req = json!({"messages": [{"role": "user", "content": "Count to five."}],
                     "max_tokens": 12, "seed": 9, "temperature": 0.7});
    let (st, whole) = post(&c, &s.url("/v1/chat/completions"), &req.to_string(), None).await;
    assert_eq!(st, 200);
    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    sreq["stream_options"] = json!({"include_usage": true});
    let body = stream_body(&c, &s.url("/v1/chat/completions"), &sreq.to_string()).await;
    let data = sse_data(&body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let mut text = String::new();
    let mut finish = None;
    for (i, ch) in chunks.iter().enumerate() {
        assert_eq!(ch["object"], "chat.completion.chunk");
        if i + 1 < chunks.len() {
            assert!(ch["usage"].is_null(), "{ch}");
            let c0 = &ch["choices"][0];
            if i == 0 {
                assert_eq!(c0["delta"]["role"], "assistant");
            }
            if let Some(t) = c0["delta"]["content"].as_str() {
                text.push_str(t);
            }
            if let Some(f) = c0["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
    }
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"].as_array().unwrap().len(), 0);
    assert_eq!(usage_chunk["usage"], whole["usage"]);
    assert_eq!(
        text,
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(
        finish.as_deref(),
        whole["choices"][0]["finish_reason"].as_str()
    );

    // Completions stream with n = 2 and logprobs: every choice ends, text per choice matches.
    let req = json!({"prompt": "Once upon a time", "max_tokens": 6, "seed": 4, "n": 2,
                     "logprobs": 1});
    let (st, whole) = post(&c, &s.url("/v1/completions"), &req.to_string(), None).await;
    assert_eq!(st, 200);
    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    let body = stream_body(&c, &s.url("/v1/completions"), &sreq.to_string()).await;
    let data = sse_data(&body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let mut texts = [String::new(), String::new()];
    let mut ntoks = [0usize; 2];
    let mut finished = 0;
    for d in &data[..data.len() - 1] {
        let ch: Value = serde_json::from_str(d).unwrap();
        assert_eq!(ch["object"], "text_completion");
        assert!(ch.get("usage").is_none());
        let c0 = &ch["choices"][0];
        let i = c0["index"].as_u64().unwrap() as usize;
        texts[i].push_str(c0["text"].as_str().unwrap());
        if let Some(t) = c0["logprobs"]["tokens"].as_array() {
            ntoks[i] += t.len();
        }
        finished += c0["finish_reason"].is_string() as usize;
    }
    assert_eq!(finished, 2);
    for i in 0..2 {
        assert_eq!(texts[i], whole["choices"][i]["text"].as_str().unwrap());
    }
    assert_eq!(
        (ntoks[0] + ntoks[1]) as u64,
        whole["usage"]["completion_tokens"].as_u64().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_openai_errors() {
    let Some(s) = TestServer::start(|c| {
        c.api_key = Some("sekrit".into());
        c.max_tokens_cap = 64;
        c.body_limit = 64 * 1024;
    })
    .await
    else {
        return;
    };
    let c = client();
    let k = Some("sekrit");
    let url = s.url("/v1/completions");
    // 401 without (or with a wrong) key; /health stays open.
    assert_error(&post(&c, &url, r#"{"prompt": "x"}"#, None).await, 401, None);
    assert_error(
        &post(&c, &url, r#"{"prompt": "x"}"#, Some("nope")).await,
        401,
        None,
    );
    assert_eq!(get(&c, &s.url("/health"), None).await.0, 200);
    assert_eq!(get(&c, &s.url("/v1/models"), None).await.0, 401);
    assert_eq!(get(&c, &s.url("/v1/models"), k).await.0, 200);
    // 404.
    let (st, body) = get(&c, &s.url("/v2/nothing"), k).await;
    assert_eq!(st, 404);
    assert_error(&(st, serde_json::from_str(&body).unwrap()), 404, None);
    // 413.
    let big = json!({"prompt": "a".repeat(100 * 1024)}).to_string();
    assert_error(&post(&c, &url, &big, k).await, 413, None);
    // 400s naming the field.
    assert_error(&post(&c, &url, "{not json", k).await, 400, None);
    assert_error(&post(&c, &url, "[1, 2]", k).await, 400, None);
    for (body, field) in [
        (r#"{"prompt": "x", "top_p": 7}"#, "top_p"),
        (r#"{"prompt": "x", "temperature": -1}"#, "temperature"),
        (r#"{"prompt": "x", "temperature": "warm"}"#, "temperature"),
        (r#"{"prompt": "x", "n": 0}"#, "n"),
        (r#"{"prompt": "x", "n": 100000}"#, "n"),
        (r#"{"prompt": "x", "max_tokens": 65}"#, "max_tokens"),
        (r#"{"prompt": "x", "max_tokens": 40, "n": 2}"#, "n"),
        (r#"{"prompt": "x", "logprobs": 50}"#, "logprobs"),
        (
            r#"{"prompt": "x", "sampler": "../../etc/passwd"}"#,
            "sampler",
        ),
        (
            r#"{"prompt": "x", "sampler": "pipelines: [{name: a}]"}"#,
            "sampler",
        ),
        (
            r#"{"prompt": "x", "logit_bias": {"999999": 5}}"#,
            "logit_bias",
        ),
        (r#"{"prompt": [999999]}"#, "prompt"),
        (r#"{"prompt": "x", "mirostat": 2, "top_k": 5}"#, "top_k"),
        (r#"{"prompt": "x", "temprature": 0.5}"#, "temprature"),
        (r#"{"prompt": ""}"#, "prompt"),
    ] {
        assert_error(&post(&c, &url, body, k).await, 400, Some(field));
    }
    let chat = s.url("/v1/chat/completions");
    assert_error(
        &post(
            &c,
            &chat,
            r#"{"messages": [{"role": "user", "content": 5}]}"#,
            k,
        )
        .await,
        400,
        Some("messages"),
    );
    assert_error(
        &post(
            &c,
            &chat,
            r#"{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 21, "logprobs": true}"#,
            k,
        )
        .await,
        400,
        Some("top_logprobs"),
    );
    // A prompt longer than the context (2048 tokens) but under the body limit.
    let long = json!({"prompt": "hello ".repeat(3000)}).to_string();
    assert_error(&post(&c, &url, &long, k).await, 400, Some("prompt"));
    // Still healthy afterwards.
    let (st, _) = post(&c, &url, r#"{"prompt": "x", "max_tokens": 2}"#, k).await;
    assert_eq!(st, 200);
    let (_, m) = get(&c, &s.url("/metrics"), k).await;
    assert!(m.contains("status=\"400\""), "{m}");
    assert!(
        m.contains("adasamp_requests_total{endpoint=\"other\",status=\"404\"}"),
        "{m}"
    );
}

/// Opens a streaming completion and waits for its first chunk.
async fn open_stream(c: &reqwest::Client, url: &str, max_tokens: usize) -> reqwest::Response {
    let mut resp = c
        .post(url)
        .header("content-type", "application/json")
        .body(
            json!({"prompt": "Write a long story about a dragon.", "max_tokens": max_tokens,
                   "stream": true, "seed": 1, "min_tokens": max_tokens})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_429_and_a_disconnect_cancels() {
    let Some(s) = TestServer::start(|c| {
        c.max_running = 1;
        c.max_queue = 1;
    })
    .await
    else {
        return;
    };
    let c = client();
    let url = s.url("/v1/completions");
    let running = open_stream(&c, &url, 1000).await;
    // The second waits in the queue; its response (headers) comes at once.
    let queued = c
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"prompt": "Hello", "max_tokens": 3, "stream": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status().as_u16(), 200);
    let (_, m) = get(&c, &s.url("/metrics"), None).await;
    assert_eq!(metric(&m, "adasamp_running_sequences"), 1.0, "{m}");
    let full = post(&c, &url, r#"{"prompt": "Hi", "max_tokens": 2}"#, None).await;
    assert_error(&full, 429, None);
    assert_eq!(full.1["error"]["type"], "rate_limit_error");
    drop(queued);
    // Dropping the running stream cancels it: the running count drops to 0 long before its
    // 1000 tokens could have been generated.
    drop(running);
    let t0 = Instant::now();
    loop {
        let (_, m) = get(&c, &s.url("/metrics"), None).await;
        if metric(&m, "adasamp_running_sequences") == 0.0
            && metric(&m, "adasamp_queued_sequences") == 0.0
        {
            assert!(
                metric(&m, "adasamp_cancelled_sequences_total") >= 1.0,
                "{m}"
            );
            assert!(metric(&m, "adasamp_generated_tokens_total") < 900.0, "{m}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "not cancelled: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Room again.
    let (st, _) = post(&c, &url, r#"{"prompt": "Hi", "max_tokens": 2}"#, None).await;
    assert_eq!(st, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_request_is_the_same_alone_and_amid_7_others_and_from_the_prefix_cache() {
    let Some(s) = TestServer::start(|c| c.max_running = 8).await else {
        return;
    };
    let c = client();
    let url = s.url("/v1/chat/completions");
    let target = json!({"messages": [{"role": "user", "content": "Tell me about the sea."}],
                        "max_tokens": 24, "seed": 1234, "temperature": 0.9, "top_p": 0.95})
    .to_string();
    let (st, alone) = post(&c, &url, &target, None).await;
    assert_eq!(st, 200, "{alone}");
    let others: Vec<_> = (0..7)
        .map(|i| {
            let c = c.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let body = json!({"messages": [{"role": "user",
                    "content": format!("Write item {i} of a shopping list.")}],
                    "max_tokens": 40 + 3 * i, "min_tokens": 40 + 3 * i, "seed": i,
                    "temperature": 1.0});
                post(&c, &url, &body.to_string(), None).await
            })
        })
        .collect();
    // The target joins a batch where the 7 others are running.
    let t0 = Instant::now();
    loop {
        let (_, m) = get(&c, &s.url("/metrics"), None).await;
        if metric(&m, "adasamp_running_sequences") == 7.0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the others never ran together: {m}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, m) = get(&c, &s.url("/metrics"), None).await;
    let cached_before = metric(&m, "adasamp_cached_prompt_tokens_total");
    let (st, amid) = post(&c, &url, &target, None).await;
    assert_eq!(st, 200, "{amid}");
    for o in others {
        assert_eq!(o.await.unwrap().0, 200);
    }
    assert_eq!(
        alone["choices"][0]["message"]["content"],
        amid["choices"][0]["message"]["content"]
    );
    assert_eq!(alone["usage"], amid["usage"]);
    // The first run's sequence stayed in the prefix cache (the others took free sequences):
    // the second started from it, all of its prompt but the last two tokens cached.
    let (_, m) = get(&c, &s.url("/metrics"), None).await;
    let prompt = amid["usage"]["prompt_tokens"].as_f64().unwrap();
    assert_eq!(
        metric(&m, "adasamp_cached_prompt_tokens_total") - cached_before,
        prompt - 2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_pipeline_and_learned_samplers() {
    let Some(_) = common::default_model() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("adasamp-serve-samplers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("mine.yaml"),
        "pipelines:\n  - name: cool\n    processors:\n      - {name: top_k, params: {top_k: 20}}\n      - {name: temperature, params: {temperature: 0.6}}\n",
    )
    .unwrap();
    let reference = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../samplers/sampling_network_t08_minp01");
    let learned = dir.join("learned_ref");
    std::fs::create_dir_all(&learned).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(reference.join(f), learned.join(f)).unwrap();
    }
    let sd = dir.clone();
    let Some(s) = TestServer::start(move |c| c.samplers_dir = Some(sd)).await else {
        return;
    };
    let c = client();
    let (st, body) = get(&c, &s.url("/v1/samplers"), None).await;
    assert_eq!(st, 200);
    let list: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cool", "learned_ref"]);
    assert_eq!(list["data"][1]["kind"], "learned");
    // a heuristic pipeline shows its stages and parameters; a learned one does not
    assert_eq!(
        list["data"][0]["config"]["processors"][1],
        json!({"name": "temperature", "params": {"temperature": 0.6}})
    );
    assert!(list["data"][1].get("config").is_none(), "{body}");
    assert!(
        !body.contains(dir.to_str().unwrap()),
        "paths stay private: {body}"
    );

    let url = s.url("/v1/chat/completions");
    let req = |sampler: &str, extra: Value| {
        let mut v = json!({"messages": [{"role": "user", "content": "Say hi."}],
                           "max_tokens": 8, "seed": 2, "sampler": sampler});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v.to_string()
    };
    let (st, a) = post(&c, &url, &req("cool", json!({})), None).await;
    assert_eq!(st, 200, "{a}");
    let (st, b) = post(
        &c,
        &url,
        &req(
            "cool",
            json!({"temperature": 1, "top_p": 1.0, "logit_bias": {"5": 1}}),
        ),
        None,
    )
    .await;
    assert_eq!(st, 200, "neutral fields and constraints are accepted: {b}");
    let conflict = post(&c, &url, &req("cool", json!({"temperature": 0.2})), None).await;
    assert_error(&conflict, 400, Some("temperature"));
    assert!(conflict.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cool"));
    // The learned sampler was loaded at start-up: removing its files changes nothing.
    let (st, l1) = post(&c, &url, &req("learned_ref", json!({})), None).await;
    assert_eq!(st, 200, "{l1}");
    std::fs::remove_dir_all(&learned).unwrap();
    let (st, l2) = post(&c, &url, &req("learned_ref", json!({})), None).await;
    assert_eq!(st, 200, "{l2}");
    assert_eq!(
        l1["choices"][0]["message"]["content"],
        l2["choices"][0]["message"]["content"]
    );
    assert_error(
        &post(&c, &url, &req("learned_ref/config.json", json!({})), None).await,
        400,
        Some("sampler"),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_in_flight_requests_with_an_error_and_returns() {
    let Some(mut s) = TestServer::start(|c| c.shutdown_grace = Duration::from_millis(200)).await
    else {
        return;
    };
    let c = client();
    let mut resp = open_stream(&c, &s.url("/v1/completions"), 1500).await;
    let t0 = Instant::now();
    s.signal_shutdown();
    let mut rest = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    let rest = String::from_utf8(rest).unwrap();
    let data = sse_data(&rest);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let err: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "shutting_down", "{rest}");
    let task = s.task.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("serve returns in bounded time")
        .unwrap()
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10));
    // Nothing listens any more.
    assert!(c.get(s.url("/health")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dropping_a_whole_answer_request_cancels_it() {
    use std::io::Write;
    let Some(s) = TestServer::start(|_| {}).await else {
        return;
    };
    let c = client();
    let addr = s.base.trim_start_matches("http://").to_string();
    let body = r#"{"prompt": "Write a long story.", "max_tokens": 1500, "min_tokens": 1500}"#;
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    sock.write_all(
        format!(
            "POST /v1/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let t0 = Instant::now();
    loop {
        let (_, m) = get(&c, &s.url("/metrics"), None).await;
        if metric(&m, "adasamp_running_sequences") == 1.0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "never ran: {m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(sock);
    let t0 = Instant::now();
    loop {
        let (_, m) = get(&c, &s.url("/metrics"), None).await;
        if metric(&m, "adasamp_running_sequences") == 0.0 {
            assert_eq!(metric(&m, "adasamp_cancelled_sequences_total"), 1.0, "{m}");
            assert!(metric(&m, "adasamp_generated_tokens_total") < 1400.0, "{m}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "not cancelled: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
