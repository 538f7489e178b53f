//! The HTTP surface: the router, the bearer-key and request-counting middleware, and the
//! handlers of every endpoint. Generation handlers parse and check a request (off the async
//! workers: tokenizing a long prompt is CPU work), reserve its sequences, submit it to the
//! engine thread, then either collect the whole answer or stream it as server-sent events.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use adasamp_engine::{chat_prompt_tokens, Generation, GenerationRequest, Usage};
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::mpsc::unbounded_channel;

use crate::engine::{Admission, Command, Event, ModelFacts, Submission};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::openai::{self, LogprobWriter};
use crate::request::{self, Endpoint, Limits, ParsedRequest, Prompt};
use crate::samplers::SamplerRegistry;

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The loaded model's facts (tokenizer, chat template, context length, id).
    pub facts: ModelFacts,
    /// Installed samplers.
    pub samplers: SamplerRegistry,
    /// Commands to the engine thread.
    pub commands: Sender<Command>,
    /// Sequences in the system, bounded.
    pub admission: Arc<Admission>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Request limits.
    pub limits: Limits,
    /// Bearer key required on every route but `/health`.
    pub api_key: Option<String>,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Unix time the server started (`created` of `/v1/models`).
    pub started: u64,
    /// Source of answer ids and of seeds for unseeded requests.
    pub counter: AtomicU64,
}

/// The router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/v1/samplers", get(samplers))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(state.body_limit))
        .with_state(state)
}

/// The label a path is counted under (unknown paths share one, so clients cannot grow the
/// metrics).
fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/v1/completions" => "/v1/completions",
        "/v1/chat/completions" => "/v1/chat/completions",
        "/v1/models" => "/v1/models",
        "/v1/samplers" => "/v1/samplers",
        "/health" => "/health",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

/// Whether two keys are equal, in time independent of where they differ.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the bearer key (all routes but `/health`) and counts the answer's status.
async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let label = endpoint_label(req.uri().path());
    let response = match &st.api_key {
        Some(key) if label != "/health" => {
            let ok = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|k| same_key(k.trim().as_bytes(), key.as_bytes()));
            if ok {
                next.run(req).await
            } else {
                ApiError::unauthorized().into_response()
            }
        }
        _ => next.run(req).await,
    };
    st.metrics.count_request(label, response.status().as_u16());
    response
}

async fn not_found(req: Request) -> Response {
    let path: String = req.uri().path().chars().take(128).collect();
    ApiError::not_found(&path).into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    let path: String = req.uri().path().chars().take(128).collect();
    ApiError::method_not_allowed(req.method().as_str(), &path).into_response()
}

async fn health() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

async fn models(State(st): State<Arc<AppState>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": [{
            "id": st.facts.id, "object": "model", "created": st.started, "owned_by": "adasamp",
            "max_model_len": st.facts.info.max_seq_len,
        }]}),
    )
}

async fn samplers(State(st): State<Arc<AppState>>) -> Response {
    let data: Vec<Value> = st
        .samplers
        .iter()
        .map(|(name, s)| {
            let stages: Vec<&str> = s.pipeline.stages().iter().map(|x| x.name()).collect();
            let mut v =
                json!({"name": name, "object": "sampler", "kind": s.kind, "stages": stages});
            if let Some(config) = s.public_config() {
                v["config"] = serde_json::to_value(config).unwrap_or(Value::Null);
            }
            v
        })
        .collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

async fn completions(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    generate(st, Endpoint::Completions, body).await
}

async fn chat_completions(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    generate(st, Endpoint::Chat, body).await
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A checked request ready for the engine.
struct Prepared {
    parsed: ParsedRequest,
    requests: Vec<GenerationRequest>,
}

/// Parses, checks and tokenizes a request, and builds one generation per choice.
fn prepare(
    st: &AppState,
    endpoint: Endpoint,
    body: Result<Bytes, BytesRejection>,
) -> Result<Prepared, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(st.body_limit)
        } else {
            ApiError::bad_request("invalid_body", r.body_text())
        }
    })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("malformed JSON: {e}")))?;
    let parsed = request::parse(&value, endpoint, &st.limits)?;
    let sampler = match &parsed.sampler {
        None => None,
        Some(name) => match st.samplers.get(name) {
            Some(s) => Some((name.as_str(), s)),
            None => {
                let shown: String = name.chars().take(64).collect();
                return Err(ApiError::invalid(
                    "sampler",
                    format!("{shown:?} is not an installed sampler (GET /v1/samplers lists them)"),
                ));
            }
        },
    };
    let tok = &st.facts.tokenizer;
    let (field, prompt) = match &parsed.prompt {
        Prompt::Text(t) => ("prompt", tok.encode(t, tok.add_bos_token())),
        Prompt::Tokens(ids) => {
            let vocab = st.facts.info.vocab_size;
            if let Some(bad) = ids.iter().find(|&&t| t as usize >= vocab) {
                return Err(ApiError::invalid(
                    "prompt",
                    format!("token {bad} is outside the vocabulary of {vocab}"),
                ));
            }
            ("prompt", Ok(ids.clone()))
        }
        Prompt::Chat(msgs) => (
            "messages",
            chat_prompt_tokens(tok, st.facts.chat.as_deref(), msgs),
        ),
    };
    let prompt = prompt.map_err(|e| ApiError::invalid(field, e))?;
    if prompt.is_empty() {
        return Err(ApiError::invalid(field, "empty after tokenization"));
    }
    let ctx = st.facts.info.max_seq_len;
    if prompt.len() >= ctx {
        return Err(ApiError::invalid(
            field,
            format!(
                "{} tokens; the model's context holds {ctx}, with room for at least one \
                 generated token",
                prompt.len()
            ),
        ));
    }
    let seed = parsed.seed.unwrap_or_else(|| {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        t ^ st.counter.fetch_add(1, Ordering::Relaxed).rotate_left(32)
    });
    let requests = (0..parsed.n)
        .map(|k| {
            let s = seed.wrapping_add(k as u64);
            Ok(GenerationRequest {
                prompt: prompt.clone(),
                pipeline: parsed.sampling.pipeline(sampler, s, tok)?,
                seed: s,
                max_new_tokens: parsed.max_tokens,
                stop: parsed.stop.clone(),
                // The engine records log-probabilities only for a top-k of at least 1.
                logprobs: parsed.logprobs.map_or(0, |k| k.max(1)),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Prepared { parsed, requests })
}

/// A completion or chat completion, whole or streamed.
async fn generate(
    st: Arc<AppState>,
    endpoint: Endpoint,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received = Instant::now();
    let prep_state = st.clone();
    let prepared =
        match tokio::task::spawn_blocking(move || prepare(&prep_state, endpoint, body)).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return e.into_response(),
            Err(e) => {
                return ApiError::internal(format!("request handling failed: {e}")).into_response()
            }
        };
    let n = prepared.requests.len();
    if let Err(e) = st.admission.reserve(n) {
        return e.into_response();
    }
    let (tx, rx) = unbounded_channel();
    let submission = Submission {
        requests: prepared.requests,
        events: tx,
        received,
    };
    if st.commands.send(Command::Submit(submission)).is_err() {
        st.admission.release(n);
        return ApiError::shutting_down().into_response();
    }
    let id = format!(
        "{}-{:x}",
        match endpoint {
            Endpoint::Completions => "cmpl",
            Endpoint::Chat => "chatcmpl",
        },
        st.counter.fetch_add(1, Ordering::Relaxed)
    );
    let answer = Answer {
        id,
        endpoint,
        created: unix_now(),
        model: st.facts.id.clone(),
        parsed: prepared.parsed,
        state: st,
    };
    if answer.parsed.stream {
        answer.stream(rx)
    } else {
        answer.whole(rx).await
    }
}

/// What every piece of one answer carries.
struct Answer {
    id: String,
    endpoint: Endpoint,
    created: u64,
    model: String,
    parsed: ParsedRequest,
    state: Arc<AppState>,
}

impl Answer {
    fn writer(&self) -> Option<LogprobWriter> {
        self.parsed
            .logprobs
            .map(|k| LogprobWriter::new(self.endpoint, k))
    }

    /// The usage of all choices: the prompt counted once, the completions summed.
    fn usage(prompt_tokens: usize, completion_tokens: usize) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }

    /// Waits for every choice and answers them in one JSON object.
    async fn whole(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>) -> Response {
        let n = self.parsed.n;
        let mut gens: Vec<Option<Generation>> = vec![None; n];
        let mut done = 0;
        while done < n {
            match rx.recv().await {
                Some(Event::Done { choice, generation }) => {
                    if let Some(slot) = gens.get_mut(choice) {
                        *slot = Some(generation);
                        done += 1;
                    }
                }
                // Dropping `rx` on return cancels the other choices.
                Some(Event::Failed { error, .. }) => return error.into_response(),
                Some(Event::Delta { .. }) => {}
                None => return ApiError::shutting_down().into_response(),
            }
        }
        let tok = &self.state.facts.tokenizer;
        let mut choices = Vec::with_capacity(n);
        let (mut prompt_tokens, mut completion) = (0, 0);
        for (i, g) in gens.into_iter().flatten().enumerate() {
            prompt_tokens = g.usage.prompt_tokens;
            completion += g.usage.completion_tokens;
            let lp = self.writer().map(|mut w| w.write(&g.logprobs, tok));
            choices.push(openai::choice_json(
                self.endpoint,
                i,
                &g.text,
                lp,
                g.finish_reason,
            ));
        }
        json_response(
            StatusCode::OK,
            &json!({
                "id": self.id, "object": openai::object(self.endpoint), "created": self.created,
                "model": self.model, "choices": choices,
                "usage": openai::usage_json(&Self::usage(prompt_tokens, completion)),
            }),
        )
    }

    /// One stream chunk holding `choice` (and `usage: null` when the usage comes last).
    fn chunk(&self, choice: Value) -> String {
        let mut v = json!({
            "id": self.id, "object": openai::chunk_object(self.endpoint),
            "created": self.created, "model": self.model, "choices": [choice],
        });
        if self.parsed.include_usage {
            v["usage"] = Value::Null;
        }
        format!("data: {v}\n\n")
    }

    /// Streams the answer as server-sent events: `data: {chunk}` per step and choice, a usage
    /// chunk when asked for, then `data: [DONE]`. When the client goes away the stream is
    /// dropped, and with it the engine's channel: the engine cancels the sequences.
    fn stream(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>) -> Response {
        let (out, out_rx) = tokio::sync::mpsc::channel::<String>(64);
        tokio::spawn(async move {
            let n = self.parsed.n;
            let tok = self.state.facts.tokenizer.clone();
            let mut writers: Vec<Option<LogprobWriter>> = (0..n).map(|_| self.writer()).collect();
            let mut started = vec![false; n];
            let (mut completion, mut finished) = (0, 0);
            loop {
                let event = tokio::select! {
                    _ = out.closed() => return,
                    e = rx.recv() => e,
                };
                let msg = match event {
                    Some(Event::Delta {
                        choice,
                        text,
                        logprobs,
                        ..
                    }) => {
                        let first = !started.get(choice).copied().unwrap_or(true);
                        if text.is_empty() && logprobs.is_empty() && !first {
                            continue;
                        }
                        if let Some(s) = started.get_mut(choice) {
                            *s = true;
                        }
                        let lp = writers
                            .get_mut(choice)
                            .and_then(|w| w.as_mut())
                            .map(|w| w.write(&logprobs, &tok));
                        self.chunk(openai::chunk_choice_json(
                            self.endpoint,
                            choice,
                            Some(&text),
                            first,
                            lp,
                            None,
                        ))
                    }
                    Some(Event::Done { choice, generation }) => {
                        completion += generation.usage.completion_tokens;
                        finished += 1;
                        let first = !started.get(choice).copied().unwrap_or(true);
                        let mut m = self.chunk(openai::chunk_choice_json(
                            self.endpoint,
                            choice,
                            None,
                            first,
                            None,
                            Some(generation.finish_reason),
                        ));
                        if finished == n {
                            if self.parsed.include_usage {
                                let u = Self::usage(generation.usage.prompt_tokens, completion);
                                let v = json!({
                                    "id": self.id, "object": openai::chunk_object(self.endpoint),
                                    "created": self.created, "model": self.model,
                                    "choices": [], "usage": openai::usage_json(&u),
                                });
                                m.push_str(&format!("data: {v}\n\n"));
                            }
                            m.push_str("data: [DONE]\n\n");
                            let _ = out.send(m).await;
                            return;
                        }
                        m
                    }
                    Some(Event::Failed { error, .. }) => {
                        let _ = out
                            .send(format!("data: {}\n\ndata: [DONE]\n\n", error.body()))
                            .await;
                        return;
                    }
                    None => {
                        let e = ApiError::shutting_down();
                        let _ = out
                            .send(format!("data: {}\n\ndata: [DONE]\n\n", e.body()))
                            .await;
                        return;
                    }
                };
                if out.send(msg).await.is_err() {
                    return;
                }
            }
        });
        let body = futures_util::stream::unfold(out_rx, |mut rx| async move {
            rx.recv().await.map(|s| (Ok::<_, Infallible>(s), rx))
        });
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from_stream(body))
            .unwrap_or_else(|_| ApiError::internal("building the stream").into_response())
    }
}
