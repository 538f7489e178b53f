//! An endpoint of the fleet: its base URL, and what a probe finds there — whether it is
//! healthy, the model it serves, and whether it is an adasamp server (with the samplers it has
//! installed) or a generic OpenAI-compatible one.

use std::collections::BTreeMap;

use adasamp_sampling::PipelineSpec;
use reqwest::Url;
use serde_json::Value;

use super::fields::{InstalledSampler, ServerKind};
use super::wire::error_chain;
use super::RemoteKind;

/// The base URL of a server (`http://HOST:PORT/`, or with a path prefix), from a URL given with
/// or without a trailing `/v1`. Only `http` (this client has no TLS).
pub fn parse_base(url: &str) -> Result<Url, String> {
    let mut u = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if u.scheme() != "http" {
        return Err(format!(
            "scheme `{}`: only http:// is supported (no TLS in this client)",
            u.scheme()
        ));
    }
    let path = u.path().trim_end_matches('/');
    let path = path.strip_suffix("/v1").unwrap_or(path).to_string();
    u.set_path(&format!("{path}/"));
    u.set_query(None);
    u.set_fragment(None);
    Ok(u)
}

/// A server found healthy.
#[derive(Debug, Clone)]
pub struct Server {
    /// Its base URL.
    pub base: Url,
    /// Its kind.
    pub kind: ServerKind,
    /// The model name sent in requests.
    pub model: String,
}

impl Server {
    /// The URL of the chat-completions endpoint.
    pub fn chat_url(&self) -> String {
        format!("{}v1/chat/completions", self.base)
    }
}

/// A GET of `path` below `base`: the status and the body as JSON (`Null` when it is not).
async fn get(
    client: &reqwest::Client,
    base: &Url,
    path: &str,
    key: Option<&str>,
) -> Result<(u16, Value), String> {
    let mut req = client.get(format!("{base}{path}"));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.map_err(|e| error_chain(&e))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| error_chain(&e))?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// Checks the server at `base`: `GET /health` (or, where there is none, `GET /v1/models`)
/// must answer 200; the model is `model`, else the first `/v1/models` lists; the kind is
/// `kind`, or with [`RemoteKind::Auto`] an adasamp server when `GET /v1/samplers` lists
/// samplers. Errors say what failed.
pub async fn probe(
    client: &reqwest::Client,
    base: &Url,
    key: Option<&str>,
    model: Option<&str>,
    kind: RemoteKind,
) -> Result<Server, String> {
    let (health, _) = get(client, base, "health", key)
        .await
        .map_err(|e| format!("health check (GET /health): {e}"))?;
    let (models_status, models) = get(client, base, "v1/models", key)
        .await
        .map_err(|e| format!("GET /v1/models: {e}"))?;
    if health != 200 && models_status != 200 {
        return Err(format!(
            "health check failed: GET /health answered {health}, GET /v1/models {models_status}"
        ));
    }
    let model = match model {
        Some(m) => m.to_string(),
        None => models["data"][0]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                format!("GET /v1/models (HTTP {models_status}) lists no model; give the model name")
            })?,
    };
    let kind = match kind {
        RemoteKind::Generic => ServerKind::Generic,
        RemoteKind::Adasamp | RemoteKind::Auto => {
            let listed = match get(client, base, "v1/samplers", key).await {
                Ok((200, v)) => installed(&v),
                Ok((status, _)) => Err(format!("HTTP {status}")),
                Err(e) => Err(e),
            };
            match (listed, kind) {
                (Ok(s), _) => ServerKind::Adasamp(s),
                (Err(_), RemoteKind::Auto) => ServerKind::Generic,
                (Err(e), _) => {
                    return Err(format!(
                        "not an adasamp server: GET /v1/samplers failed ({e})"
                    ))
                }
            }
        }
    };
    Ok(Server {
        base: base.clone(),
        kind,
        model,
    })
}

/// The samplers of a `GET /v1/samplers` answer, by name.
fn installed(v: &Value) -> Result<BTreeMap<String, InstalledSampler>, String> {
    let data = v["data"]
        .as_array()
        .ok_or("the answer has no `data` list")?;
    let mut out = BTreeMap::new();
    for d in data {
        let name = d["name"].as_str().ok_or("a sampler without a name")?;
        let stages = d["stages"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let config = d
            .get("config")
            .and_then(|c| serde_json::from_value::<PipelineSpec>(c.clone()).ok());
        out.insert(name.to_string(), InstalledSampler { stages, config });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base_urls_are_normalised() {
        for (given, base) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
            ("http://h:1/v1/", "http://h:1/"),
            ("http://h:1/api/v1?x=2", "http://h:1/api/"),
        ] {
            assert_eq!(parse_base(given).unwrap().as_str(), base, "{given}");
        }
        assert!(parse_base("https://h:1").unwrap_err().contains("http://"));
        assert!(parse_base("h:1:2").is_err());
    }

    #[test]
    fn sampler_listings_are_read() {
        let v = json!({"object": "list", "data": [
            {"name": "a", "kind": "pipeline", "stages": ["temperature"],
             "config": {"name": "a", "weight": 1.0, "processors": [{"name": "temperature", "params": {"temperature": 0.7}}]}},
            {"name": "l", "kind": "learned", "stages": ["learned"]}
        ]});
        let s = installed(&v).unwrap();
        assert_eq!(
            s["a"].config.as_ref().unwrap().processors[0].name,
            "temperature"
        );
        assert_eq!(s["l"].stages, ["learned"]);
        assert!(s["l"].config.is_none());
        assert!(installed(&json!({"error": 1})).is_err());
    }
}
