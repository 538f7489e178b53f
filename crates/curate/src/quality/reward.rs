//! `label quality` with a reward endpoint instead of a judge: every generation gets
//! [`labels::REWARD`] from the [`Scorer`], or — when the call failed — no reward at all
//! (missing, never a number). Groups (prompt, seed) are written whole, as in the tournament, so
//! a killed run resumes the same way; a batch in which every call failed stops the stage before
//! writing it (the endpoint is down), so a rerun tries those generations again.

use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use super::groups;
use super::http::parallel_map;
use super::scorer::Scorer;
use crate::error::Result;
use crate::labels;
use crate::stage::{progress, StageReport};

/// Labels the records of `input` into `output` with rewards from `scorer`, up to `concurrency`
/// calls at once.
pub fn label_rewards(
    input: &Path,
    output: &Path,
    scorer: &Scorer,
    concurrency: usize,
) -> Result<StageReport> {
    let groups::Resumed {
        todo,
        output: mut out,
        mut report,
    } = groups::resume("label quality (reward endpoint)", input, output)?;
    let bar = progress(todo.iter().map(|g| g.records.len()).sum(), "generations");
    let started = Instant::now();
    let batch = 4 * concurrency.max(1);
    let (mut missing, mut first_error) = (0usize, None::<String>);
    for chunk in groups::batches(&todo, |g| g.records.len(), batch) {
        let records: Vec<_> = chunk.iter().flat_map(|g| g.records.iter()).collect();
        let rewards = parallel_map(&records, concurrency, |r| {
            let s = scorer.score(r);
            bar.inc(1);
            s
        });
        if rewards.iter().all(|r| r.is_err()) {
            if let Some(e) = rewards.into_iter().find_map(|r| r.err()) {
                return Err(e);
            }
            continue;
        }
        for (r, reward) in records.into_iter().zip(rewards) {
            let mut r = r.clone();
            let value = reward.map_err(|e| e.to_string()).and_then(|x| {
                serde_json::Number::from_f64(x).ok_or_else(|| format!("{x} is not finite"))
            });
            match value {
                Ok(x) => {
                    r.extra.insert(labels::REWARD.into(), Value::Number(x));
                }
                Err(e) => {
                    missing += 1;
                    first_error.get_or_insert(e);
                    r.extra.remove(labels::REWARD);
                }
            }
            out.append(&r)?;
        }
    }
    bar.finish_and_clear();
    report.written = out.written();
    report.note(format!("scorer: {}", scorer.url()));
    let secs = started.elapsed().as_secs_f64();
    let scored = report.written - missing;
    if scored > 0 {
        report.note(format!(
            "scored {scored} generations in {secs:.1} s: {:.2} per second",
            scored as f64 / secs.max(1e-9)
        ));
    }
    if let Some(e) = first_error {
        report.note(format!(
            "{missing} generations written without a reward (the call failed; first: {e})"
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::super::fake_server;
    use super::super::groups::tests::rec;
    use super::super::http::HttpOptions;
    use super::*;
    use crate::stage::read_records;
    use std::time::Duration;

    fn quick() -> HttpOptions {
        HttpOptions {
            timeout: Duration::from_secs(10),
            retries: 1,
            backoff: Duration::from_millis(1),
        }
    }

    #[test]
    fn rewards_from_the_endpoint_and_failures_left_missing() {
        // the reward is the response's length; "FAIL" gets a 500, "NAN" a non-number
        let server = fake_server::spawn(|_, _, body| {
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            let resp = v["response"].as_str().unwrap().to_string();
            assert!(v["prompt"].as_str().unwrap().starts_with("question"));
            match resp.as_str() {
                "FAIL" => (500, "oops".into()),
                "NAN" => (200, r#"{"score": "NaN"}"#.into()),
                _ => (200, format!(r#"{{"score": {}}}"#, resp.len())),
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
        let mut text = Vec::new();
        for (p, pipe, seed, g) in [
            ("a", "x", 0, "hello"),
            ("a", "y", 0, "FAIL"),
            ("b", "x", 0, "hi"),
            ("b", "x", 1, "NAN"),
        ] {
            adasamp_engine::record::write_record(&mut text, &rec(p, pipe, seed, g)).unwrap();
        }
        std::fs::write(&input, text).unwrap();
        let scorer = Scorer::new(&server.url, quick(), None).unwrap();
        let r = label_rewards(&input, &output, &scorer, 3).unwrap();
        assert_eq!((r.read, r.written), (4, 4), "{r}");
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("2 generations written without a reward")),
            "{r}"
        );
        let out = read_records(&output).unwrap();
        let reward = |g: &str| {
            out.iter()
                .find(|r| r.generation == g)
                .unwrap()
                .extra
                .get(labels::REWARD)
                .cloned()
        };
        assert_eq!(reward("hello"), Some(serde_json::json!(5.0)));
        assert_eq!(reward("hi"), Some(serde_json::json!(2.0)));
        assert_eq!(reward("FAIL"), None);
        assert_eq!(reward("NAN"), None);
        // nothing left to do on a rerun
        let r = label_rewards(&input, &output, &scorer, 3).unwrap();
        assert_eq!((r.already_done, r.written), (4, 0));
    }

    #[test]
    fn a_dead_scorer_stops_the_stage_before_writing() {
        let server = fake_server::spawn(|_, _, _| (503, "down".into()));
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
        let mut text = Vec::new();
        adasamp_engine::record::write_record(&mut text, &rec("a", "x", 0, "g")).unwrap();
        std::fs::write(&input, text).unwrap();
        let scorer = Scorer::new(&server.url, quick(), None).unwrap();
        let e = label_rewards(&input, &output, &scorer, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("503"), "{e}");
        assert!(read_records(&output).unwrap().is_empty());
    }
}
