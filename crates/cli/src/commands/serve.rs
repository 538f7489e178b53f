//! `adasamp serve`: the OpenAI-compatible HTTP server (see the `adasamp-serve` crate).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use adasamp_engine::BackendChoice;
use adasamp_serve::{ModelSpec, Server, ServerConfig};
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
}

/// Runs `serve` until SIGTERM or SIGINT.
pub fn run(a: &ServeArgs) -> Result<()> {
    let config = ServerConfig {
        samplers_dir: a.samplers.clone(),
        max_running: a.max_running,
        max_queue: a.max_queue,
        max_tokens_cap: a.max_tokens_cap,
        api_key: a.api_key.clone(),
        shutdown_grace: Duration::from_secs(a.shutdown_grace),
        ..ServerConfig::new(ModelSpec {
            path: a.model.clone(),
            backend: a.backend,
            max_seq_len: a.max_seq_len,
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
