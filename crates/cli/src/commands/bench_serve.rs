//! `adasamp bench-serve`: load an OpenAI-compatible server (`adasamp serve`, llama.cpp's
//! `llama-server`, …) with concurrent streamed requests and report throughput and per-token
//! latency per concurrency level.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::loadgen::run::{run_level, LevelResult, LoadBounds, LoadTarget};
use crate::loadgen::target::{Target, TargetError};
use crate::loadgen::wire::{request_body, Endpoint, RequestTemplate};

/// The most concurrent clients and seconds per level accepted (the load stays bounded).
const MAX_CLIENTS: usize = 512;
const MAX_DURATION_S: f64 = 3600.0;

/// Options of `bench-serve`.
#[derive(Debug, Args)]
pub struct BenchServeArgs {
    /// Base URL of the server (`http://HOST:PORT`; a trailing `/v1` is accepted). Must be a
    /// loopback address or localhost unless --allow-remote.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Name of the server in the table and the JSON (default: HOST:PORT).
    #[arg(long)]
    pub label: Option<String>,
    /// Endpoint to load.
    #[arg(long, value_enum, default_value_t = Endpoint::Chat)]
    pub endpoint: Endpoint,
    /// Concurrency levels, run one after another (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub concurrency: Vec<usize>,
    /// Seconds per level: no request starts after this (in-flight ones finish).
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// At most this many requests per level (in all, over its clients).
    #[arg(long)]
    pub requests: Option<usize>,
    /// Unmeasured requests sent one by one before the first level (they must succeed).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// The `model` field (default: the first model the server lists at /v1/models).
    #[arg(long)]
    pub model: Option<String>,
    /// The `max_tokens` field.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u32,
    /// The `temperature` field (a negative value leaves it out: the server's default).
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f64,
    /// A prompt (repeatable; requests use the prompts in turn). Default: eight short instructions.
    #[arg(long, conflicts_with = "prompts")]
    pub prompt: Vec<String>,
    /// A file of prompts, one per non-empty line.
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// Extra JSON fields merged into every request body (a JSON object, e.g. '{"min_p":0.05}').
    #[arg(long)]
    pub extra: Option<String>,
    /// Bearer key sent with every request.
    #[arg(long)]
    pub api_key: Option<String>,
    /// Time limit of each request, in seconds.
    #[arg(long, default_value_t = 120.0)]
    pub request_timeout: f64,
    /// Allow a server that is not on this machine.
    #[arg(long)]
    pub allow_remote: bool,
    /// Write the results as JSON here as well.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The machine-readable results (`--json`).
#[derive(Debug, Serialize)]
struct Report {
    label: String,
    url: String,
    endpoint: Endpoint,
    model: String,
    max_tokens: u32,
    temperature: Option<f64>,
    extra: Map<String, Value>,
    prompts: usize,
    duration_s: f64,
    max_requests: Option<usize>,
    /// Seconds since the Unix epoch when the run started.
    started_unix_s: u64,
    levels: Vec<LevelResult>,
    ratio: Option<Ratio>,
}

/// The last level against the first: how throughput and tail latency scale with clients.
#[derive(Debug, Serialize)]
struct Ratio {
    from_concurrency: usize,
    to_concurrency: usize,
    /// tokens_per_s(to) / tokens_per_s(from).
    tokens_per_s: Option<f64>,
    /// p99 inter-token latency(to) / p99 inter-token latency(from).
    p99_itl: Option<f64>,
}

/// Runs the benchmark.
pub fn run(a: &BenchServeArgs) -> Result<()> {
    let target = Target::parse(&a.url, a.allow_remote).map_err(|e| match e {
        TargetError::NotLoopback { .. } => anyhow::anyhow!("{e} (--allow-remote)"),
        e => e.into(),
    })?;
    check_bounds(a)?;
    let extra = parse_extra(a.extra.as_deref())?;
    let prompts = load_prompts(a)?;
    let label = a.label.clone().unwrap_or_else(|| target.host_port());
    let request_timeout = Duration::from_secs_f64(a.request_timeout);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = reqwest::Client::builder()
        .no_proxy() // load goes straight to the server named, never through a proxy
        .connect_timeout(Duration::from_secs(10))
        // A fresh connection per request: a server may close an idle keep-alive connection just
        // as a pooled one is reused (llama-server does), which would count as a failed request.
        // On loopback a connect costs microseconds, far below the latencies measured.
        .pool_max_idle_per_host(0)
        .build()
        .context("building the HTTP client")?;

    let model = match &a.model {
        Some(m) => m.clone(),
        None => rt.block_on(first_model(&client, &target, a.api_key.as_deref()))?,
    };
    let template = RequestTemplate {
        endpoint: a.endpoint,
        model,
        max_tokens: a.max_tokens,
        temperature: (a.temperature >= 0.0).then_some(a.temperature),
        extra,
    };
    let load = LoadTarget {
        url: target.url(a.endpoint.path()),
        api_key: a.api_key.clone(),
        bodies: prompts.iter().map(|p| request_body(&template, p)).collect(),
    };
    eprintln!(
        "bench-serve: {label} ({}), model {:?}, max_tokens {}, {} prompt(s), {} s per level{}",
        load.url,
        template.model,
        a.max_tokens,
        prompts.len(),
        a.duration,
        a.requests
            .map(|n| format!(" or {n} requests"))
            .unwrap_or_default()
    );
    for i in 0..a.warmup {
        let body = &load.bodies[i % load.bodies.len()];
        let key = load.api_key.as_deref();
        let o = rt.block_on(crate::loadgen::client::stream_request(
            &client,
            &load.url,
            key,
            body,
            request_timeout,
        ));
        if let Some(e) = o.error {
            bail!("warm-up request to {} failed: {e}", load.url);
        }
    }

    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    println!("{}", table_header().trim_end());
    let mut levels = Vec::new();
    for &clients in &a.concurrency {
        let bounds = LoadBounds {
            clients,
            duration: Duration::from_secs_f64(a.duration),
            max_requests: a.requests,
            request_timeout,
        };
        let r = rt.block_on(run_level(&client, &load, bounds));
        println!("{}", table_row(&label, &r));
        levels.push(r);
    }
    let ratio = ratio(&levels);
    if let Some(r) = &ratio {
        println!("{}", ratio_line(r));
    }
    let failed: usize = levels.iter().map(|l| l.errors).sum();
    let sent: usize = levels.iter().map(|l| l.requests).sum();
    let report = Report {
        label,
        url: load.url.clone(),
        endpoint: a.endpoint,
        model: template.model.clone(),
        max_tokens: a.max_tokens,
        temperature: template.temperature,
        extra: template.extra.clone(),
        prompts: prompts.len(),
        duration_s: a.duration,
        max_requests: a.requests,
        started_unix_s,
        levels,
        ratio,
    };
    if let Some(out) = &a.json {
        let text = serde_json::to_string_pretty(&report)?;
        adasamp_engine::files::write_atomic(out, text.as_bytes())?;
    }
    if failed > 0 {
        for l in &report.levels {
            for e in &l.error_examples {
                eprintln!("  {} clients: {e}", l.concurrency);
            }
        }
        bail!("{failed} of {sent} requests failed");
    }
    Ok(())
}

fn check_bounds(a: &BenchServeArgs) -> Result<()> {
    if a.concurrency.is_empty() || a.concurrency.iter().any(|&c| c == 0 || c > MAX_CLIENTS) {
        bail!(
            "concurrency levels must be between 1 and {MAX_CLIENTS}, got {:?}",
            a.concurrency
        );
    }
    if !(a.duration > 0.0 && a.duration <= MAX_DURATION_S) {
        bail!(
            "duration must be in (0, {MAX_DURATION_S}] seconds, got {}",
            a.duration
        );
    }
    if !(a.request_timeout > 0.0 && a.request_timeout <= MAX_DURATION_S) {
        bail!(
            "request timeout must be in (0, {MAX_DURATION_S}] seconds, got {}",
            a.request_timeout
        );
    }
    if a.requests == Some(0) {
        bail!("requests per level must be at least 1");
    }
    if a.max_tokens == 0 {
        bail!("max_tokens must be at least 1");
    }
    Ok(())
}

/// The `--extra` object.
fn parse_extra(extra: Option<&str>) -> Result<Map<String, Value>> {
    let Some(text) = extra else {
        return Ok(Map::new());
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => bail!("extra fields must be a JSON object, got {other}"),
        Err(e) => bail!("extra fields are not valid JSON ({e}): {text}"),
    }
}

fn load_prompts(a: &BenchServeArgs) -> Result<Vec<String>> {
    let prompts: Vec<String> = if let Some(path) = &a.prompts {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading prompts from {}", path.display()))?;
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    } else if !a.prompt.is_empty() {
        a.prompt.clone()
    } else {
        super::bench_generate::PROMPTS
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    if prompts.is_empty() {
        bail!("no prompts: the prompts file holds no non-empty line");
    }
    Ok(prompts)
}

/// The first model id of the server's `GET /v1/models`.
async fn first_model(
    client: &reqwest::Client,
    target: &Target,
    key: Option<&str>,
) -> Result<String> {
    let url = target.url("v1/models");
    let mut req = client.get(&url).timeout(Duration::from_secs(30));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("asking {url} for its models (is the server running?)"))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("reading {url}"))?;
    if !status.is_success() {
        bail!(
            "{url}: HTTP {status}: {}; name the model with --model",
            crate::loadgen::wire::error_body_message(&body)
        );
    }
    let v: Value = serde_json::from_slice(&body).with_context(|| format!("{url}: not JSON"))?;
    v["data"]
        .get(0)
        .and_then(|m| m["id"].as_str())
        .map(String::from)
        .with_context(|| format!("{url} lists no model; name one with --model"))
}

fn table_header() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| server | clients | requests | errors | req/s | gen tok/s | TTFT p50 | TTFT p99 | ITL p50 | ITL p99 | latency p50 |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    s
}

fn table_row(label: &str, r: &LevelResult) -> String {
    let ms = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.1} ms"));
    format!(
        "| {label} | {} | {} | {} | {:.2} | {:.1} | {} | {} | {} | {} | {} |",
        r.concurrency,
        r.requests,
        r.errors,
        r.requests_per_s,
        r.tokens_per_s,
        ms(r.ttft_ms.map(|s| s.p50)),
        ms(r.ttft_ms.map(|s| s.p99)),
        ms(r.itl_ms.map(|s| s.p50)),
        ms(r.itl_ms.map(|s| s.p99)),
        ms(r.latency_ms.map(|s| s.p50)),
    )
}

/// The last level against the first, when there are two or more.
fn ratio(levels: &[LevelResult]) -> Option<Ratio> {
    let (first, last) = (levels.first()?, levels.last()?);
    if levels.len() < 2 {
        return None;
    }
    let div = |a: f64, b: f64| (b > 0.0).then_some(a / b);
    Some(Ratio {
        from_concurrency: first.concurrency,
        to_concurrency: last.concurrency,
        tokens_per_s: div(last.tokens_per_s, first.tokens_per_s),
        p99_itl: match (last.itl_ms, first.itl_ms) {
            (Some(l), Some(f)) => div(l.p99, f.p99),
            _ => None,
        },
    })
}

fn ratio_line(r: &Ratio) -> String {
    let x = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("×{x:.2}"));
    format!(
        "{} vs {} clients: aggregate gen tok/s {}, p99 ITL {}",
        r.to_concurrency,
        r.from_concurrency,
        x(r.tokens_per_s),
        x(r.p99_itl)
    )
}
