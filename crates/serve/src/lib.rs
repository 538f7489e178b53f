//! adasamp's OpenAI-compatible HTTP server (`adasamp serve`).
//!
//! # Design
//!
//! - **One engine thread** ([`engine`]) owns the loaded model and a step-wise
//!   [`adasamp_engine::Scheduler`]. HTTP handlers never touch the model: they send it commands
//!   (submit a request with a per-request event channel; shut down) over a channel. Its loop
//!   takes new requests between steps, runs one step (prefill of newly admitted prompts plus one
//!   decoded token per running sequence) and forwards each request's text delta, tokens,
//!   log-probabilities and finish to its channel — continuous batching: requests join and leave
//!   the batch between steps. A request whose channel is closed (the client disconnected or
//!   closed its stream) is cancelled before the next step; its KV cache is freed at once.
//! - **Bounded admission**: at most `max_running` sequences run and `max_queue` wait; a request
//!   whose `n` sequences do not fit is answered 429 at once ([`engine::Admission`]).
//! - **Strict requests** ([`request`], [`sampling`], [`fields`]): every field is type- and
//!   range-checked and unknown fields are refused, each error a 400 in OpenAI's error shape
//!   naming the field ([`error::ApiError`]). The sampling fields map onto adasamp pipeline
//!   stages in llama.cpp's order.
//! - **Named samplers** ([`samplers`]): the pipelines and learned samplers of `--samplers DIR`
//!   are built once at start-up; a request names one by `sampler` and gets a clone (a learned
//!   stage shares its weights). A name that is not installed is a 400 — a request can never make
//!   the server read a file. With `sampler`, only the constraints `logit_bias` and `min_tokens`
//!   are added (applied before the named pipeline); any other sampling field at a non-neutral
//!   value is a 400 naming it.
//! - **Determinism**: choice `k` of a request with `seed` s samples with seed `s + k` on its own
//!   RNG stream, and the scheduler decodes a sequence identically whatever else is in the batch,
//!   so a seeded request's text does not depend on concurrent traffic.
//! - **Wire format** ([`openai`], [`routes`]): `/v1/completions` and `/v1/chat/completions`,
//!   whole or as server-sent events (`data: {chunk}` … `data: [DONE]`, with
//!   `stream_options.include_usage` a final usage chunk); `/v1/models`, `/v1/samplers`,
//!   `/health`, `/metrics` (Prometheus text, [`metrics`]).
//! - **Safety**: body size limit (413), `max_tokens` and `n × max_tokens` capped, optional
//!   bearer key (401; `/health` stays open), loopback bind by default (the CLI), and graceful
//!   shutdown ([`server::Server::serve`]): stop accepting, let in-flight requests run for a
//!   grace period, cancel the rest with a clear error.

pub mod engine;
pub mod error;
pub mod fields;
pub mod metrics;
pub mod openai;
pub mod request;
pub mod routes;
pub mod samplers;
pub mod sampling;
pub mod server;

pub use engine::ModelSpec;
pub use error::{ApiError, ServeError};
pub use samplers::SamplerRegistry;
pub use server::{bind, shutdown_signal, Server, ServerConfig, DEFAULT_PREFILL_BUDGET};
