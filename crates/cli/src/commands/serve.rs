//! `adasamp serve`: the OpenAI-compatible HTTP server (see the `adasamp-serve` crate).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use adasamp_engine::{BackendChoice, SchedulerOptions};
use adasamp_serve::{ModelSpec, Server, ServerConfig, DEFAULT_PREFILL_BUDGET};
use anyhow::{Context, Result};
use clap::Args;

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Model: a .gguf file or a Hugging Face directory (default: the embedded default model).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Backend: auto, candle or llama.cpp.
    #[arg(long, default_value = "auto")]
    pub backend: BackendChoice,
    /// Directory of samplers to install: pipeline YAML files (every pipeline, by name) and
    /// learned-sampler checkpoint directories (by directory name); requests pick one by
    /// `sampler`.
    #[arg(long, value_name = "DIR")]
    pub samplers: Option<PathBuf>,
    /// Address to bind (loopback by default).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0 = any free port; the bound address is printed as `listening on http://…`).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Sequences decoded together at most.
    #[arg(long, default_value_t = 8)]
    pub max_running: usize,
    /// Sequences waiting for a slot at most; beyond, requests get 429.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// Largest max_tokens a request may ask for (and largest n × max_tokens).
    #[arg(long, default_value_t = 2048)]
    pub max_tokens_cap: usize,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Cap on prompt + generation length (default: the model's context).
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// Seconds in-flight requests may still run after SIGTERM/SIGINT before they are cancelled.
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace: u64,
    /// CPU threads of the model (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Prompt tokens prefilled in one step at most (0 = whole prompts at once): a longer prompt
    /// is fed over several steps while the running sequences keep decoding.
    #[arg(long, default_value_t = DEFAULT_PREFILL_BUDGET)]
    pub prefill_budget: usize,
    /// Prefill every prompt from scratch instead of starting from the KV cache of a finished
    /// request that shares a prefix with it.
    #[arg(long)]
    pub no_prefix_cache: bool,
    /// llama.cpp's flash attention: faster, but it computes attention in f16 and so moves the
    /// logits slightly (off by default).
    #[arg(long)]
    pub flash_attn: bool,
    /// Where the model runs: cpu, cuda or cuda:N (a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: adasamp_engine::ComputeDevice,
}

/// Runs `serve` until SIGTERM or SIGINT.
pub fn run(a: &ServeArgs) -> Result<()> {
    let config = ServerConfig {
        samplers_dir: a.samplers.clone(),
        max_running: a.max_running,
        scheduling: SchedulerOptions {
            prefix_cache: !a.no_prefix_cache,
            prefill_budget: (a.prefill_budget > 0).then_some(a.prefill_budget),
        },
        max_queue: a.max_queue,
        max_tokens_cap: a.max_tokens_cap,
        api_key: a.api_key.clone(),
        shutdown_grace: Duration::from_secs(a.shutdown_grace),
        ..ServerConfig::new(ModelSpec {
            path: a.model.clone(),
            backend: a.backend,
            max_seq_len: a.max_seq_len,
            threads: a.threads,
            flash_attn: a.flash_attn,
            device: a.device,
        })
    };
    let server = Server::start(config)?;
    let facts = &server.state().facts;
    eprintln!(
        "model: {} ({}, vocab {}, context {}) on backend {}; {} sampler(s) installed",
        facts.id,
        facts.info.arch,
        facts.info.vocab_size,
        facts.info.max_seq_len,
        facts.info.backend,
        server.state().samplers.len()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let (listener, addr) = adasamp_serve::bind(&a.host, a.port).await?;
        println!("listening on http://{addr}");
        std::io::stdout().flush().ok();
        server
            .serve(listener, adasamp_serve::shutdown_signal())
            .await?;
        eprintln!("server stopped");
        Ok(())
    })
}
