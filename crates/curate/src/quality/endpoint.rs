//! A judge behind an OpenAI-compatible chat-completions endpoint (vLLM, SGLang, llama.cpp's
//! server, `adasamp serve`, a hosted API): each comparison is one request
//!
//! ```json
//! {"model": M, "messages": [{"role": "user", "content": <judging prompt>}],
//!  "max_tokens": 1, "temperature": 1, "logprobs": true, "top_logprobs": 15}
//! ```
//!
//! (the server applies the judge's chat template), read from
//! `choices[0].logprobs.content[0].top_logprobs` (plus the sampled token itself). Requests run
//! concurrently; transient failures are retried with back-off ([`super::http`]).

use serde_json::{json, Value};

use super::http::{chat_completions_url, models_url, parallel_map, Http, HttpOptions};
use super::judge::{Comparison, Judge, TOP_LOGPROBS};
use super::outcome::LetterProbs;
use super::template;
use crate::error::{CurateError, Result};

/// A judge behind an OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct EndpointJudge {
    http: Http,
    url: String,
    model: String,
    concurrency: usize,
}

impl EndpointJudge {
    /// A judge at `base` (`http://host:port`, `…/v1` or the full chat-completions URL) using
    /// `model`, or — when `None` — the first model the server lists at `/v1/models`; up to
    /// `concurrency` requests at once, with an optional bearer `api_key`.
    pub fn connect(
        base: &str,
        model: Option<&str>,
        concurrency: usize,
        opts: HttpOptions,
        api_key: Option<&str>,
    ) -> Result<Self> {
        let http = Http::new(opts, api_key)?;
        let model = match model {
            Some(m) => m.to_string(),
            None => {
                let url = models_url(base);
                let list = http.get_json(&url)?;
                list["data"][0]["id"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| CurateError::Remote {
                        endpoint: url,
                        message: format!("no model id at `data[0].id` of the model list: {list}"),
                    })?
            }
        };
        Ok(Self {
            http,
            url: chat_completions_url(base),
            model,
            concurrency: concurrency.max(1),
        })
    }

    /// The model name sent with each request.
    pub fn model(&self) -> &str {
        &self.model
    }
}

/// The request body judging `c` with `model`.
pub fn request_body(model: &str, c: &Comparison<'_>) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": template::render(c.question, c.answer_a, c.answer_b)}],
        "max_tokens": 1,
        "temperature": 1.0,
        "logprobs": true,
        "top_logprobs": TOP_LOGPROBS,
    })
}

/// The letter probabilities in a chat-completions answer (`choices[0].logprobs.content[0]`:
/// its `top_logprobs` and the sampled token); an error names what is missing or malformed.
pub fn parse_reply(v: &Value) -> std::result::Result<LetterProbs, String> {
    let first = &v["choices"][0]["logprobs"]["content"][0];
    if !first.is_object() {
        return Err(format!(
            "no `choices[0].logprobs.content[0]` in the answer (does the server return logprobs?): {}",
            excerpt(v)
        ));
    }
    let entry = |e: &Value, field: &str| -> std::result::Result<(String, f64), String> {
        let token = e["token"]
            .as_str()
            .ok_or_else(|| format!("`{field}.token` is not a string: {}", excerpt(e)))?;
        let logprob = e["logprob"]
            .as_f64()
            .ok_or_else(|| format!("`{field}.logprob` is not a number: {}", excerpt(e)))?;
        Ok((token.to_string(), logprob))
    };
    let top = first["top_logprobs"].as_array().ok_or_else(|| {
        "`choices[0].logprobs.content[0].top_logprobs` is not an array".to_string()
    })?;
    let mut all = Vec::with_capacity(top.len() + 1);
    for (i, e) in top.iter().enumerate() {
        all.push(entry(e, &format!("top_logprobs[{i}]"))?);
    }
    all.push(entry(first, "content[0]")?);
    LetterProbs::from_top(all.iter().map(|(t, l)| (t.as_str(), *l))).map_err(|e| e.to_string())
}

/// At most 300 characters of a JSON value, for messages.
fn excerpt(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= 300 {
        s
    } else {
        format!("{}…", s.chars().take(300).collect::<String>())
    }
}

impl Judge for EndpointJudge {
    fn describe(&self) -> String {
        format!("{} (model {})", self.url, self.model)
    }

    fn judge(
        &mut self,
        comparisons: &[Comparison<'_>],
    ) -> Result<Vec<Result<LetterProbs, CurateError>>> {
        Ok(parallel_map(comparisons, self.concurrency, |c| {
            let reply = self
                .http
                .post_json(&self.url, &request_body(&self.model, c))?;
            parse_reply(&reply).map_err(|message| CurateError::Remote {
                endpoint: self.url.clone(),
                message,
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_asks_for_one_token_and_top_15() {
        let b = request_body(
            "judge-m",
            &Comparison {
                question: "q",
                answer_a: "x",
                answer_b: "y",
            },
        );
        assert_eq!(b["max_tokens"], 1);
        assert_eq!(b["top_logprobs"], 15);
        assert_eq!(b["logprobs"], true);
        assert_eq!(b["temperature"], 1.0);
        assert_eq!(b["model"], "judge-m");
        assert_eq!(b["messages"][0]["role"], "user");
        assert_eq!(b["messages"][0]["content"], template::render("q", "x", "y"));
    }

    #[test]
    fn reply_parsing() {
        let reply = json!({"choices": [{"message": {"content": "A"}, "logprobs": {"content": [{
        "token": "A", "logprob": (0.6f64).ln(),
        "top_logprobs": [
            {"token": "A", "logprob": (0.6f64).ln()},
            {"token": " B", "logprob": (0.2f64).ln()},
            {"token": "The", "logprob": (0.1f64).ln()}
        ]}]}}]});
        let p = parse_reply(&reply).unwrap();
        assert!(
            (p.a - 0.6).abs() < 1e-12 && (p.b - 0.2).abs() < 1e-12,
            "{p:?}"
        );
        // the sampled token counts even when a server leaves it out of the top list
        let reply = json!({"choices": [{"logprobs": {"content": [{
            "token": "B", "logprob": -2.0, "top_logprobs": [{"token": "A", "logprob": -0.1}]}]}}]});
        let p = parse_reply(&reply).unwrap();
        assert!((p.b - (-2.0f64).exp()).abs() < 1e-12);
        for (bad, want) in [
            (
                json!({"choices": [{"message": {"content": "A"}}]}),
                "does the server return logprobs",
            ),
            (
                json!({"choices": [{"logprobs": {"content": [{"token": "A", "logprob": 0.0}]}}]}),
                "not an array",
            ),
            (
                json!({"choices": [{"logprobs": {"content": [{"token": "A", "logprob": 0.0,
                "top_logprobs": [{"token": 5, "logprob": 0.0}]}]}}]}),
                "top_logprobs[0].token",
            ),
            (
                json!({"choices": [{"logprobs": {"content": [{"token": "A", "logprob": 0.0,
                "top_logprobs": [{"token": "A", "logprob": "x"}]}]}}]}),
                "top_logprobs[0].logprob",
            ),
            (
                json!({"choices": [{"logprobs": {"content": [{"token": "A", "logprob": 3.0,
                "top_logprobs": []}]}}]}),
                "not ≤ 0",
            ),
        ] {
            let e = parse_reply(&bad).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
