//! A direct scalar reward per generation from a reward-model endpoint — the alternative to the
//! pairwise tournament (SPEC 4). The contract, one request per generation:
//!
//! ```text
//! POST <url>   {"prompt": "<user prompt>", "system_prompt": "<text>" | null, "response": "<generation>"}
//! 200          {"score": <finite number>}
//! ```
//!
//! Anything else — a failed connection after the retries, a non-2xx answer, a body without a
//! finite number at `score` — is a failed call: the generation's reward is *missing* (the field
//! is left out), never a sentinel number that would pollute normalisation.

use adasamp_engine::record::CandidateRecord;
use serde_json::{json, Value};

use super::http::{Http, HttpOptions};
use crate::error::{CurateError, Result};

/// A reward endpoint.
#[derive(Debug, Clone)]
pub struct Scorer {
    http: Http,
    url: String,
}

impl Scorer {
    /// The endpoint at `url` (posted to as is), with an optional bearer `api_key`.
    pub fn new(url: &str, opts: HttpOptions, api_key: Option<&str>) -> Result<Self> {
        Ok(Self {
            http: Http::new(opts, api_key)?,
            url: url.to_string(),
        })
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The reward of `r`'s generation, or why the call failed.
    pub fn score(&self, r: &CandidateRecord) -> Result<f64> {
        let reply = self.http.post_json(&self.url, &request_body(r))?;
        parse_score(&reply).map_err(|message| CurateError::Remote {
            endpoint: self.url.clone(),
            message,
        })
    }
}

/// The request body for `r`.
pub fn request_body(r: &CandidateRecord) -> Value {
    json!({"prompt": r.prompt, "system_prompt": r.system_prompt, "response": r.generation})
}

/// The finite number at `score`.
pub fn parse_score(v: &Value) -> std::result::Result<f64, String> {
    match v.get("score").and_then(Value::as_f64) {
        Some(s) if s.is_finite() => Ok(s),
        _ => Err(format!("expected {{\"score\": <finite number>}}, got {v}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract() {
        assert_eq!(parse_score(&json!({"score": 0.25})), Ok(0.25));
        assert_eq!(parse_score(&json!({"score": -3, "extra": 1})), Ok(-3.0));
        for bad in [
            json!({"score": "1"}),
            json!({"reward": 1}),
            json!([1]),
            json!({"score": null}),
        ] {
            assert!(parse_score(&bad).unwrap_err().contains("expected"), "{bad}");
        }
    }
}
