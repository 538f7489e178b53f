//! The remote backend: OpenAI-compatible servers — a fleet of vLLM or SGLang servers, or
//! adasamp servers — in rotation, each job one chat-completion request with its own seed.
//!
//! * Before any request, every endpoint is probed ([`endpoint::probe`]: health, model, kind);
//!   one that fails is left out (and said so). Every pipeline is then checked against every
//!   healthy endpoint ([`fields::request_fields`]); a pipeline some server cannot run exactly
//!   stops the run before anything is sent, naming the pipeline, the stage and why.
//! * At most `max_concurrency` requests are in flight; each goes to the next endpoint in the
//!   rotation ([`rotation::Rotation`]). A failed request is retried — on another endpoint when
//!   there is one — after an exponential back-off (`backoff · 2^(k−1)` before retry k, at most
//!   8 s), up to `attempts` tries. An endpoint that fails `max_failures_in_a_row` requests in a
//!   row is taken out of the rotation and the work goes to the others; when none is left the run
//!   stops with an error (what was generated is in the file; a rerun resumes).

pub mod endpoint;
pub mod fields;
pub mod rotation;
pub mod wire;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use serde_json::{Map, Value};
use tokio::task::JoinSet;

use super::{CandidateSet, Job, Outcome, Sink};
use crate::error::{CurateError, Refusal, Result};
use crate::stage::StageReport;
use endpoint::Server;
use rotation::Rotation;
use wire::Failure;

/// What kind of servers the endpoints are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemoteKind {
    /// Each endpoint's own: an adasamp server when it lists samplers at `GET /v1/samplers`,
    /// else a generic one.
    #[default]
    Auto,
    /// Generic OpenAI-compatible servers (vLLM, SGLang): standard sampling fields only.
    Generic,
    /// adasamp servers: installed samplers by name, or flat fields.
    Adasamp,
}

impl std::str::FromStr for RemoteKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "generic" | "vllm" | "sglang" | "openai" => Ok(Self::Generic),
            "adasamp" => Ok(Self::Adasamp),
            o => Err(format!(
                "unknown remote kind `{o}` (auto, generic, adasamp)"
            )),
        }
    }
}

/// How to reach the servers.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Base URLs (`http://HOST:PORT`, a trailing `/v1` is accepted).
    pub endpoints: Vec<String>,
    /// The `model` field (default: the first model each server lists).
    pub model: Option<String>,
    /// What kind of servers they are.
    pub kind: RemoteKind,
    /// Requests in flight at most, over all endpoints.
    pub max_concurrency: usize,
    /// Bearer key sent with every request.
    pub api_key: Option<String>,
    /// Time limit of one request.
    pub request_timeout: Duration,
    /// Tries per job (the first and the retries).
    pub attempts: u32,
    /// Wait before the first retry; doubled for each further one (at most 8 s).
    pub backoff: Duration,
    /// Failures in a row that take an endpoint out of the rotation.
    pub max_failures_in_a_row: u32,
}

impl RemoteConfig {
    /// Defaults for `endpoints`: auto-detected kind, 8 requests in flight, 10 minutes per
    /// request, 4 tries with 0.5 s back-off, out after 3 failures in a row.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            model: None,
            kind: RemoteKind::Auto,
            max_concurrency: 8,
            api_key: None,
            request_timeout: Duration::from_secs(600),
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_failures_in_a_row: 3,
        }
    }
}

/// The most a back-off waits.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// The wait before try `k` (k ≥ 1 is the first retry): `base · 2^(k−1)`, at most 8 s.
pub fn backoff(base: Duration, k: u32) -> Duration {
    if k == 0 {
        return Duration::ZERO;
    }
    base.saturating_mul(1u32 << (k - 1).min(16))
        .min(MAX_BACKOFF)
}

/// OpenAI-compatible servers ready to take jobs.
#[derive(Debug)]
pub struct RemoteBackend {
    config: RemoteConfig,
    bases: Vec<Url>,
}

/// `[server][pipeline]`: the sampling fields of each pipeline a run uses, per server.
type FieldTable = Vec<Vec<Option<Map<String, Value>>>>;

/// What every request task shares.
struct Shared {
    client: reqwest::Client,
    servers: Vec<Server>,
    fields: FieldTable,
    rotation: Mutex<Rotation>,
    config: RemoteConfig,
}

/// How one job ended.
enum JobEnd {
    Done(Outcome),
    Failed(String),
    /// No endpoint was left to try it on.
    Stranded,
}

impl RemoteBackend {
    /// Servers at `config.endpoints` (not contacted yet). Errors name the parameter: no
    /// endpoint, a URL that is not `http://…`, a concurrency or a number of tries of 0.
    pub fn new(config: RemoteConfig) -> Result<Self> {
        let bad = |name: &str, value: String, message: String| CurateError::BadParameter {
            name: name.into(),
            value,
            message,
        };
        if config.endpoints.is_empty() {
            return Err(bad("endpoints", "[]".into(), "give at least one".into()));
        }
        let bases = config
            .endpoints
            .iter()
            .map(|u| endpoint::parse_base(u).map_err(|m| bad("endpoint", u.clone(), m)))
            .collect::<Result<Vec<_>>>()?;
        if config.max_concurrency == 0 {
            return Err(bad(
                "max_concurrency",
                "0".into(),
                "must be at least 1".into(),
            ));
        }
        if config.attempts == 0 {
            return Err(bad("attempts", "0".into(), "must be at least 1".into()));
        }
        Ok(Self { config, bases })
    }

    /// Runs `jobs` on the servers (see the module doc), handing each finished one to `sink`;
    /// endpoints left out or taken out are noted in `report`.
    pub(crate) fn generate(
        &mut self,
        set: &CandidateSet,
        jobs: &[Job],
        sink: &mut Sink<'_>,
        report: &mut StageReport,
    ) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CurateError::Remote {
                endpoint: "(all)".into(),
                message: format!("cannot start the async runtime: {e}"),
            })?;
        rt.block_on(self.generate_async(set, jobs, sink, report))
    }

    async fn generate_async(
        &self,
        set: &CandidateSet,
        jobs: &[Job],
        sink: &mut Sink<'_>,
        report: &mut StageReport,
    ) -> Result<()> {
        let cfg = &self.config;
        let client = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| CurateError::Remote {
                endpoint: "(all)".into(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let mut servers = Vec::new();
        let mut left_out = Vec::new();
        for base in &self.bases {
            match endpoint::probe(
                &client,
                base,
                cfg.api_key.as_deref(),
                cfg.model.as_deref(),
                cfg.kind,
            )
            .await
            {
                Ok(s) => servers.push(s),
                Err(e) => {
                    report.note(format!("{base}: left out: {e}"));
                    left_out.push(format!("{base}: {e}"));
                }
            }
        }
        if servers.is_empty() {
            return Err(CurateError::Remote {
                endpoint: self.config.endpoints.join(", "),
                message: format!("no endpoint is healthy ({})", left_out.join("; ")),
            });
        }
        let fields = resolve(set, jobs, &servers)?;
        let shared = Arc::new(Shared {
            client,
            rotation: Mutex::new(Rotation::new(servers.len(), cfg.max_failures_in_a_row)),
            servers,
            fields,
            config: cfg.clone(),
        });
        let mut tasks = JoinSet::new();
        let mut pending = jobs.iter();
        let mut stranded = 0usize;
        loop {
            while tasks.len() < cfg.max_concurrency && live(&shared) > 0 {
                let Some(&job) = pending.next() else { break };
                let p = &set.prompts[job.prompt];
                let text = JobText {
                    system: set.system_for(p).map(str::to_string),
                    prompt: p.prompt.clone(),
                    max_tokens: set.max_new_tokens,
                };
                tasks.spawn(run_job(shared.clone(), job, text));
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let (job, end) = joined.map_err(|e| CurateError::Remote {
                endpoint: "(all)".into(),
                message: format!("a request task failed: {e}"),
            })?;
            match end {
                JobEnd::Done(o) => sink(job, Ok(o))?,
                JobEnd::Failed(m) => sink(job, Err(m))?,
                JobEnd::Stranded => stranded += 1,
            }
        }
        let rotation = shared
            .rotation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut out = Vec::new();
        for (s, st) in shared.servers.iter().zip(rotation.states()) {
            if !st.live {
                let why = st.last_error.as_deref().unwrap_or("(no error recorded)");
                let line = format!(
                    "{}: taken out of the rotation after {} failures in a row (last: {why}); it had answered {} request(s)",
                    s.base, st.failures_in_a_row, st.served
                );
                report.note(line.clone());
                out.push(line);
            }
        }
        let not_done = stranded + pending.len();
        if not_done > 0 {
            return Err(CurateError::Remote {
                endpoint: self.config.endpoints.join(", "),
                message: format!(
                    "no endpoint is left in the rotation, {not_done} candidate(s) not generated \
                     (what was generated is written; rerun to resume):\n  {}",
                    out.join("\n  ")
                ),
            });
        }
        Ok(())
    }
}

/// The sampling fields of every pipeline `jobs` use, per server; every pipeline some server
/// cannot run exactly is refused (all of them named, before any request is sent).
fn resolve(set: &CandidateSet, jobs: &[Job], servers: &[Server]) -> Result<FieldTable> {
    let used: BTreeSet<usize> = jobs.iter().map(|j| j.pipeline).collect();
    let pipelines = set.pipelines.pipelines();
    let mut fields = vec![vec![None; pipelines.len()]; servers.len()];
    let mut refusals = Vec::new();
    for (si, s) in servers.iter().enumerate() {
        for &p in &used {
            match fields::request_fields(pipelines[p].spec(), &s.kind) {
                Ok(f) => fields[si][p] = Some(f),
                Err((stage, reason)) => refusals.push(Refusal {
                    pipeline: pipelines[p].name().to_string(),
                    stage,
                    endpoint: s.base.to_string(),
                    reason,
                }),
            }
        }
    }
    if refusals.is_empty() {
        Ok(fields)
    } else {
        Err(CurateError::Refused(refusals))
    }
}

/// Endpoints still in the rotation.
fn live(shared: &Shared) -> usize {
    shared
        .rotation
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .live()
}

/// What a job's request says, apart from the sampling.
struct JobText {
    system: Option<String>,
    prompt: String,
    max_tokens: usize,
}

/// Tries `job` on the endpoints in rotation until one answers, it fails for good, or no
/// endpoint is left.
async fn run_job(shared: Arc<Shared>, job: Job, text: JobText) -> (Job, JobEnd) {
    let cfg = &shared.config;
    let mut previous = None;
    let mut last_error = String::new();
    for attempt in 0..cfg.attempts {
        tokio::time::sleep(backoff(cfg.backoff, attempt)).await;
        let picked = shared
            .rotation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pick(previous);
        let Some(i) = picked else {
            return (job, JobEnd::Stranded);
        };
        previous = Some(i);
        let server = &shared.servers[i];
        let Some(fields) = &shared.fields[i][job.pipeline] else {
            return (
                job,
                JobEnd::Failed(format!("no request fields for {}", server.base)),
            );
        };
        let body = wire::chat_body(
            &server.model,
            text.system.as_deref(),
            &text.prompt,
            text.max_tokens,
            job.seed,
            fields,
        );
        let answer = wire::send(
            &shared.client,
            &server.chat_url(),
            cfg.api_key.as_deref(),
            &body,
        )
        .await;
        let mut rotation = shared.rotation.lock().unwrap_or_else(|p| p.into_inner());
        match answer {
            Ok(o) => {
                rotation.succeeded(i);
                return (job, JobEnd::Done(o));
            }
            Err(Failure::Refused(m)) => {
                rotation.succeeded(i);
                return (
                    job,
                    JobEnd::Failed(format!("{} refused it: {m}", server.base)),
                );
            }
            Err(f @ Failure::Busy(_)) => last_error = format!("{}: {}", server.base, f.message()),
            Err(f @ Failure::Transient(_)) => {
                rotation.failed(i, f.message());
                last_error = format!("{}: {}", server.base, f.message());
            }
        }
    }
    (
        job,
        JobEnd::Failed(format!(
            "{} tries failed; the last: {last_error}",
            cfg.attempts
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let b = Duration::from_millis(500);
        let waits: Vec<_> = (0..6).map(|k| backoff(b, k).as_millis()).collect();
        assert_eq!(waits, [0, 500, 1000, 2000, 4000, 8000]);
        assert_eq!(backoff(b, 40), MAX_BACKOFF);
    }

    #[test]
    fn configs_are_checked() {
        let e = RemoteBackend::new(RemoteConfig::new(vec![])).unwrap_err();
        assert!(e.to_string().contains("endpoints"), "{e}");
        let e = RemoteBackend::new(RemoteConfig::new(vec!["ftp://x".into()])).unwrap_err();
        assert!(e.to_string().contains("ftp://x"), "{e}");
        let mut c = RemoteConfig::new(vec!["http://127.0.0.1:1".into()]);
        c.max_concurrency = 0;
        assert!(RemoteBackend::new(c)
            .unwrap_err()
            .to_string()
            .contains("max_concurrency"));
        assert_eq!("vllm".parse::<RemoteKind>(), Ok(RemoteKind::Generic));
        assert!("x".parse::<RemoteKind>().unwrap_err().contains("adasamp"));
    }
}
