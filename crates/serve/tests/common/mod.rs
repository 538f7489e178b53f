//! Helpers shared by the server's integration tests: a server on 127.0.0.1:0 with the default
//! model, and small HTTP helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use adasamp_engine::{fetch, BackendChoice};
use adasamp_serve::{ModelSpec, Server, ServerConfig};
use serde_json::Value;

/// The default model's path, or `None` with a note when it is not cached.
pub fn default_model() -> Option<PathBuf> {
    let p = fetch::cached_path(&fetch::DEFAULT_MODEL);
    if !p.exists() {
        eprintln!(
            "note: {} absent; run `adasamp model fetch` to enable the server tests",
            p.display()
        );
        return None;
    }
    Some(p)
}

/// A server config for the default model with a 2048-token context.
pub fn config(model: PathBuf) -> ServerConfig {
    ServerConfig {
        shutdown_grace: Duration::from_secs(5),
        ..ServerConfig::new(ModelSpec {
            path: Some(model),
            backend: BackendChoice::Auto,
            max_seq_len: Some(2048),
            threads: None,
            flash_attn: false,
            device: adasamp_engine::ComputeDevice::Cpu,
        })
    }
}

/// A server listening on a loopback port, stopped on drop.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The serving task.
    pub task: Option<tokio::task::JoinHandle<Result<(), adasamp_serve::ServeError>>>,
}

impl TestServer {
    /// Starts a server with the default model, `edit` applied to its config; `None` when the
    /// model is not cached.
    pub async fn start(edit: impl FnOnce(&mut ServerConfig) + Send + 'static) -> Option<Self> {
        let model = default_model()?;
        let server = tokio::task::spawn_blocking(move || {
            let mut c = config(model);
            edit(&mut c);
            Server::start(c)
        })
        .await
        .unwrap()
        .expect("server starts");
        let (listener, addr) = adasamp_serve::bind("127.0.0.1", 0).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        Some(Self {
            base: format!("http://{addr}"),
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Sends the shutdown signal.
    pub fn signal_shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.signal_shutdown();
    }
}

/// POSTs a JSON body; returns the status and the parsed body.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    key: Option<&str>,
) -> (u16, Value) {
    let mut r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(k) = key {
        r = r.header("authorization", format!("Bearer {k}"));
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, v)
}

/// GETs a path; returns the status and the body text.
pub async fn get(client: &reqwest::Client, url: &str, key: Option<&str>) -> (u16, String) {
    let mut r = client.get(url);
    if let Some(k) = key {
        r = r.header("authorization", format!("Bearer {k}"));
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The value of an unlabelled metric in a Prometheus text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

/// The `data:` payloads of an SSE body.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| ev.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

/// Asserts an OpenAI-style error body with status `status` naming `param`.
pub fn assert_error(got: &(u16, Value), status: u16, param: Option<&str>) {
    assert_eq!(got.0, status, "{}", got.1);
    let e = &got.1["error"];
    assert!(e["message"].is_string(), "{}", got.1);
    assert!(e["type"].is_string(), "{}", got.1);
    assert!(
        e.get("code").is_some() && e.get("param").is_some(),
        "{}",
        got.1
    );
    if let Some(p) = param {
        assert_eq!(e["param"], p, "{}", got.1);
    }
}
