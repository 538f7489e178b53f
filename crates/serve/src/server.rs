//! Starting and running the server: load the model (on the engine thread) and the installed
//! samplers, build the router, serve on a listener until a shutdown signal, then shut down
//! gracefully within a bounded time.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use adasamp_engine::SchedulerOptions;
use axum::Router;
use tokio::net::TcpListener;

use crate::engine::{Admission, Command, Engine, ModelSpec};
use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::request::Limits;
use crate::routes::{router, AppState};
use crate::samplers::SamplerRegistry;

/// Prompt tokens prefilled in one engine step at most, by default: a longer prompt is fed over
/// several steps while the running sequences keep decoding (see docs/performance.md).
pub const DEFAULT_PREFILL_BUDGET: usize = 64;

/// Largest `n` a request may ask for.
pub const MAX_N: usize = 16;
/// Largest `top_logprobs` / completions `logprobs`.
pub const MAX_LOGPROBS: usize = 20;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The model to load.
    pub model: ModelSpec,
    /// Directory of pipeline files and learned-sampler checkpoints to install.
    pub samplers_dir: Option<PathBuf>,
    /// Sequences in the running batch at most.
    pub max_running: usize,
    /// Prefix cache and prefill budget of the scheduler.
    pub scheduling: SchedulerOptions,
    /// Sequences waiting for a slot at most (beyond: 429).
    pub max_queue: usize,
    /// Largest `max_tokens` (and `n × max_tokens`) a request may ask for.
    pub max_tokens_cap: usize,
    /// Bearer key required on every route but `/health`.
    pub api_key: Option<String>,
    /// Largest request body, in bytes (beyond: 413).
    pub body_limit: usize,
    /// After a shutdown signal, how long in-flight requests may run before they are cancelled.
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    /// Defaults around `model`: 8 running, the prefix cache on, at most
    /// [`DEFAULT_PREFILL_BUDGET`] prompt tokens a step, 64 queued, 2048-token cap, 1 MiB bodies,
    /// 10 s grace.
    pub fn new(model: ModelSpec) -> Self {
        Self {
            model,
            samplers_dir: None,
            max_running: 8,
            scheduling: SchedulerOptions {
                prefix_cache: true,
                prefill_budget: Some(DEFAULT_PREFILL_BUDGET),
            },
            max_queue: 64,
            max_tokens_cap: 2048,
            api_key: None,
            body_limit: 1 << 20,
            shutdown_grace: Duration::from_secs(10),
        }
    }

    fn check(&self) -> Result<(), ServeError> {
        let bad = |field, value: usize, reason| {
            Err(ServeError::Option {
                field,
                value: value.to_string(),
                reason,
            })
        };
        if self.max_running == 0 {
            return bad("max_running", 0, "must be ≥ 1");
        }
        if self.model.threads == Some(0) {
            return bad("threads", 0, "must be ≥ 1");
        }
        if self.scheduling.prefill_budget == Some(0) {
            return bad("prefill_budget", 0, "must be ≥ 1");
        }
        if self.max_tokens_cap == 0 {
            return bad("max_tokens_cap", 0, "must be ≥ 1");
        }
        if self.body_limit == 0 {
            return bad("body_limit", 0, "must be ≥ 1");
        }
        if self.api_key.as_deref().is_some_and(str::is_empty) {
            return Err(ServeError::Option {
                field: "api_key",
                value: "\"\"".into(),
                reason: "must not be empty",
            });
        }
        Ok(())
    }
}

/// A started server: the model is loaded and the samplers installed; [`Server::serve`] runs it.
#[derive(Debug)]
pub struct Server {
    state: Arc<AppState>,
    engine: Engine,
    grace: Duration,
}

impl Server {
    /// Installs the samplers, then loads the model on the engine thread.
    pub fn start(config: ServerConfig) -> Result<Self, ServeError> {
        config.check()?;
        let samplers = match &config.samplers_dir {
            Some(d) => SamplerRegistry::load_dir(d)?,
            None => SamplerRegistry::default(),
        };
        let metrics = Arc::new(Metrics::default());
        let admission = Arc::new(Admission::new(config.max_running + config.max_queue));
        let (engine, facts) = Engine::start(
            config.model.clone(),
            config.max_running,
            config.scheduling,
            admission.clone(),
            metrics.clone(),
        )?;
        let limits = Limits {
            max_tokens_cap: config.max_tokens_cap,
            max_n: MAX_N.min(admission.capacity()),
            max_logprobs: MAX_LOGPROBS,
        };
        let state = Arc::new(AppState {
            facts,
            samplers,
            commands: engine.sender(),
            admission,
            metrics,
            limits,
            api_key: config.api_key.clone(),
            body_limit: config.body_limit,
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            counter: AtomicU64::new(0),
        });
        Ok(Self {
            state,
            engine,
            grace: config.shutdown_grace,
        })
    }

    /// The router (for serving, or for driving in-process with `tower::ServiceExt::oneshot`).
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// The shared state (model facts, samplers, metrics).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves on `listener` until `shutdown` resolves; then stops accepting, lets in-flight
    /// requests finish for the grace period, cancels the rest (their clients get a
    /// "shutting down" error), and returns — at most a few seconds past the grace period even
    /// if a client keeps its connection open.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            state,
            engine,
            grace,
        } = self;
        let commands = engine.sender();
        let (signalled_tx, mut signalled_rx) = tokio::sync::watch::channel(false);
        let graceful = async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = commands.send(Command::Shutdown { grace });
            let _ = signalled_tx.send(true);
        };
        let serving = axum::serve(listener, router(state)).with_graceful_shutdown(graceful);
        let hard_stop = async move {
            while !*signalled_rx.borrow() {
                if signalled_rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            tokio::time::sleep(grace + Duration::from_secs(5)).await;
        };
        let result = tokio::select! {
            r = serving => r.map_err(|e| ServeError::Io { context: "serving".into(), source: e }),
            _ = hard_stop => {
                tracing::warn!("connections still open after the grace period; closing them");
                Ok(())
            }
        };
        let _ = tokio::task::spawn_blocking(move || engine.shutdown(Duration::ZERO)).await;
        result
    }
}

/// Binds `host:port` (port 0: any free port; read it back with `local_addr`).
pub async fn bind(host: &str, port: u16) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = TcpListener::bind((host, port))
        .await
        .map_err(|e| ServeError::Io {
            context: format!("binding {host}:{port}"),
            source: e,
        })?;
    let addr = listener.local_addr().map_err(|e| ServeError::Io {
        context: "reading the bound address".into(),
        source: e,
    })?;
    Ok((listener, addr))
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adasamp_engine::BackendChoice;

    fn config() -> ServerConfig {
        ServerConfig::new(ModelSpec {
            path: None,
            backend: BackendChoice::Auto,
            max_seq_len: None,
            threads: None,
            flash_attn: false,
            device: adasamp_engine::ComputeDevice::Cpu,
        })
    }

    #[test]
    fn out_of_range_options_are_refused_by_name() {
        assert!(config().check().is_ok());
        let field = |edit: fn(&mut ServerConfig)| {
            let mut c = config();
            edit(&mut c);
            match c.check() {
                Err(ServeError::Option { field, .. }) => field,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(field(|c| c.max_running = 0), "max_running");
        assert_eq!(field(|c| c.model.threads = Some(0)), "threads");
        assert_eq!(
            field(|c| c.scheduling.prefill_budget = Some(0)),
            "prefill_budget"
        );
        assert_eq!(field(|c| c.max_tokens_cap = 0), "max_tokens_cap");
    }
}
