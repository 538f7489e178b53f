//! Per-prompt, per-contender values read from the labelled candidate records: verifiable
//! accuracy (mean over seeds of [`labels::VERIFIED`]), self-BLEU and embedding entropy (the
//! (prompt, contender) group's [`labels::SELF_BLEU`] / [`labels::EMBEDDING_ENTROPY`]) and
//! generation lengths in tokens. The scoreboard averages them over prompts, the bootstrap
//! resamples prompts.

use std::collections::HashMap;

use adasamp_curate::labels;
use adasamp_curate::stage::CandidateKey;
use adasamp_engine::record::CandidateRecord;
use serde_json::Value;

use crate::error::Result;

/// Each name's position in `names`.
pub fn positions(names: &[String]) -> HashMap<&str, usize> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect()
}

/// Values per prompt (outer index, eval order) and contender (inner index, contender order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PromptTable {
    /// Fraction of seeds answered correctly; `None` for a prompt without an answer.
    pub accuracy: Vec<Vec<Option<f64>>>,
    /// The group's self-BLEU (0–100); `None` when not labelled (fewer than two seeds).
    pub self_bleu: Vec<Vec<Option<f64>>>,
    /// The group's embedding entropy (bits); `None` when not labelled.
    pub embedding_entropy: Vec<Vec<Option<f64>>>,
    /// Generated tokens of each generation that reports them.
    pub lengths: Vec<Vec<Vec<usize>>>,
}

/// A label of a record as a number (`None` when absent, `null` or not a number).
fn number(r: &CandidateRecord, field: &str) -> Option<f64> {
    match r.extra.get(field) {
        Some(Value::Number(n)) => n.as_f64(),
        _ => None,
    }
}

/// Generated tokens of a record: its token ids, else its usage count.
pub fn generated_tokens(r: &CandidateRecord) -> Option<usize> {
    r.generation_tokens
        .as_ref()
        .map(Vec::len)
        .or(r.usage.map(|u| u.completion_tokens))
}

impl PromptTable {
    /// The table of `records` for `prompts` × `contenders` (records of other prompts or
    /// pipelines are ignored; a record without a prompt id or seed is an error naming it).
    pub fn from_records(
        records: &[CandidateRecord],
        prompts: &[String],
        contenders: &[String],
    ) -> Result<Self> {
        let (p_index, c_index) = (positions(prompts), positions(contenders));
        let (np, nc) = (prompts.len(), contenders.len());
        let mut verified: Vec<Vec<(f64, usize)>> = vec![vec![(0.0, 0); nc]; np];
        let mut t = PromptTable {
            accuracy: vec![vec![None; nc]; np],
            self_bleu: vec![vec![None; nc]; np],
            embedding_entropy: vec![vec![None; nc]; np],
            lengths: vec![vec![Vec::new(); nc]; np],
        };
        for r in records {
            let key = CandidateKey::of(r)?;
            let (Some(&p), Some(&c)) = (
                p_index.get(key.prompt_id.as_str()),
                c_index.get(key.pipeline.as_str()),
            ) else {
                continue;
            };
            if let Some(v) = number(r, labels::VERIFIED) {
                verified[p][c].0 += v;
                verified[p][c].1 += 1;
            }
            if let Some(v) = number(r, labels::SELF_BLEU) {
                t.self_bleu[p][c] = Some(v);
            }
            if let Some(v) = number(r, labels::EMBEDDING_ENTROPY) {
                t.embedding_entropy[p][c] = Some(v);
            }
            if let Some(n) = generated_tokens(r) {
                t.lengths[p][c].push(n);
            }
        }
        for (p, row) in verified.iter().enumerate() {
            for (c, &(sum, n)) in row.iter().enumerate() {
                if n > 0 {
                    t.accuracy[p][c] = Some(sum / n as f64);
                }
            }
        }
        Ok(t)
    }

    /// Prompts with an answer for every contender (the accuracy's `n`).
    pub fn prompts_with_answers(&self) -> usize {
        self.accuracy
            .iter()
            .filter(|row| row.iter().all(Option::is_some))
            .count()
    }

    /// Column `c` of a per-prompt table.
    pub fn column(table: &[Vec<Option<f64>>], c: usize) -> Vec<Option<f64>> {
        table.iter().map(|row| row[c]).collect()
    }

    /// Accuracy of contender `c` per prompt, only on prompts where every contender has one
    /// (so differences compare the same prompts).
    pub fn accuracy_column(&self, c: usize) -> Vec<Option<f64>> {
        self.accuracy
            .iter()
            .map(|row| {
                if row.iter().all(Option::is_some) {
                    row[c]
                } else {
                    None
                }
            })
            .collect()
    }

    /// Mean of a column over the prompts that have a value.
    pub fn mean(values: &[Option<f64>]) -> Option<f64> {
        let v: Vec<f64> = values.iter().flatten().copied().collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// Mean generated tokens per generation of contender `c` (`None` when no generation
    /// reports its tokens).
    pub fn mean_length(&self, c: usize) -> Option<f64> {
        let (sum, n) = self
            .lengths
            .iter()
            .flat_map(|row| row[c].iter())
            .fold((0usize, 0usize), |(s, n), &x| (s + x, n + 1));
        (n > 0).then(|| sum as f64 / n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adasamp_engine::record::SamplerInfo;
    use adasamp_sampling::PipelineSpec;
    use serde_json::{json, Map};

    fn rec(
        prompt: &str,
        pipeline: &str,
        seed: u64,
        labels: Value,
        tokens: usize,
    ) -> CandidateRecord {
        let mut extra = Map::new();
        extra.insert(labels::PROMPT_ID.into(), prompt.into());
        if let Value::Object(m) = labels {
            extra.extend(m);
        }
        CandidateRecord {
            id: Some(format!("{prompt}/{pipeline}/s{seed}")),
            prompt: "q".into(),
            system_prompt: None,
            raw: false,
            generation: "g".into(),
            generation_tokens: Some(vec![1; tokens]),
            sampler_info: SamplerInfo {
                name: pipeline.into(),
                config: PipelineSpec {
                    name: pipeline.into(),
                    weight: 1.0,
                    processors: vec![],
                },
                extra: Default::default(),
            },
            seed: Some(seed),
            finish_reason: None,
            usage: None,
            logprobs: None,
            extra,
        }
    }

    #[test]
    fn values_land_in_their_prompt_and_contender_cells() {
        let recs = vec![
            rec(
                "p1",
                "a",
                0,
                json!({"verified": 1, "self_bleu": 20.0, "embedding_entropy": 1.5}),
                4,
            ),
            rec(
                "p1",
                "a",
                1,
                json!({"verified": 0, "self_bleu": 20.0, "embedding_entropy": 1.5}),
                6,
            ),
            rec("p1", "b", 0, json!({"verified": 1}), 10),
            rec("p1", "b", 1, json!({"verified": 1}), 10),
            rec("p2", "a", 0, json!({}), 2),
            rec("p2", "b", 0, json!({}), 2),
            rec("other", "a", 0, json!({"verified": 1}), 100),
            rec("p2", "zzz", 0, json!({}), 100),
        ];
        let t = PromptTable::from_records(
            &recs,
            &["p1".into(), "p2".into()],
            &["a".into(), "b".into()],
        )
        .unwrap();
        assert_eq!(t.accuracy, [[Some(0.5), Some(1.0)], [None, None]]);
        assert_eq!(t.prompts_with_answers(), 1);
        assert_eq!(t.self_bleu[0], [Some(20.0), None]);
        assert_eq!(t.embedding_entropy[0][0], Some(1.5));
        assert_eq!(t.mean_length(0), Some(4.0));
        assert_eq!(t.mean_length(1), Some(22.0 / 3.0));
        assert_eq!(PromptTable::mean(&t.accuracy_column(1)), Some(1.0));
        assert_eq!(
            PromptTable::mean(&PromptTable::column(&t.self_bleu, 1)),
            None
        );
    }
}
