//! The best single heuristic of the grid, chosen from the labelled training candidates: the
//! pipeline whose generations have the highest mean score — the same weighted z-score `score`
//! ranks by (SPEC 4 "Scoring") — with verifiable filtering off, so a wrong answer counts as a
//! reward of 0 instead of vanishing from the mean. Ties go to the pipeline name.

use std::collections::BTreeMap;

use adasamp_curate::score::{prepare, ScoreOptions, Weights};
use adasamp_engine::record::CandidateRecord;
use serde::{Deserialize, Serialize};

use super::DemoError;

/// One pipeline's standing in the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineStanding {
    /// Pipeline name.
    pub pipeline: String,
    /// Its scored generations.
    pub n: usize,
    /// Mean score `(b·q + a·d·[div] + c·v·[verif]) / (b + a·[div] + c·[verif])` over them.
    pub mean_score: f64,
}

/// The choice and the table it was made from (best first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestHeuristic {
    /// The chosen pipeline.
    pub pipeline: String,
    /// Every pipeline, highest mean score first.
    pub standings: Vec<PipelineStanding>,
    /// How the choice was made, in one sentence.
    pub rule: String,
}

/// The pipeline with the highest mean score over `records` (labelled candidates) under
/// `weights`; an error when no record can be scored.
pub fn best_heuristic(
    records: &[CandidateRecord],
    weights: &Weights,
) -> Result<BestHeuristic, DemoError> {
    let opts = ScoreOptions {
        verifiable_filter: false,
        ..ScoreOptions::default()
    };
    let prepared = prepare(records, &opts)?;
    let mut sums: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for row in &prepared.rows {
        let e = sums.entry(row.key.pipeline.as_str()).or_default();
        e.0 += 1;
        e.1 += row.score(weights);
    }
    let mut standings: Vec<PipelineStanding> = sums
        .into_iter()
        .map(|(p, (n, s))| PipelineStanding {
            pipeline: p.to_string(),
            n,
            mean_score: s / n as f64,
        })
        .collect();
    standings.sort_by(|x, y| {
        y.mean_score
            .total_cmp(&x.mean_score)
            .then_with(|| x.pipeline.cmp(&y.pipeline))
    });
    let first = standings.first().ok_or(DemoError::NothingToScore)?;
    Ok(BestHeuristic {
        pipeline: first.pipeline.clone(),
        rule: format!(
            "highest mean score (weights {}, z-normalised labels, verifiable filtering off) \
             over its {} labelled training candidates",
            weights.key(),
            first.n
        ),
        standings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use adasamp_curate::labels;
    use serde_json::json;

    fn record(prompt: &str, pipeline: &str, seed: u64, quality: f64) -> CandidateRecord {
        let v = json!({
            "id": format!("{prompt}/{pipeline}/{seed}"),
            "prompt": "p",
            "generation": "g",
            "sampler_info": {"name": pipeline, "config": {"name": pipeline, "processors": []}},
            "seed": seed,
            labels::PROMPT_ID: prompt,
            labels::QUALITY: quality,
        });
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_pipeline_with_the_highest_mean_score_wins() {
        let recs = vec![
            record("a", "hot", 0, -1.0),
            record("a", "cold", 0, 1.0),
            record("b", "hot", 0, 0.5),
            record("b", "cold", 0, 0.0),
            record("b", "warm", 0, -0.5),
        ];
        let w = Weights::on_grid(0.1, 0.9, 0.9).unwrap();
        let b = best_heuristic(&recs, &w).unwrap();
        assert_eq!(b.pipeline, "cold");
        assert_eq!(b.standings.len(), 3);
        assert_eq!(b.standings[0].n, 2);
        assert!(b.standings[0].mean_score > b.standings[1].mean_score);
        assert!(b.rule.contains("a0.1"), "{}", b.rule);
    }

    #[test]
    fn no_scorable_record_is_an_error() {
        let w = Weights::on_grid(0.1, 0.9, 0.9).unwrap();
        assert!(best_heuristic(&[], &w).is_err());
    }
}
