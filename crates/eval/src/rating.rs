//! The rating: a pairwise judge on every pair of contenders per (prompt, seed) — a round robin,
//! each pair judged in both orders as in curation's tournaments — and Bradley–Terry strengths
//! of the contenders fitted on all the soft outcomes (one player per contender).
//!
//! The judge, the letter probabilities → soft outcome rule and the Bradley–Terry fit are
//! curation's (`adasamp_curate::quality::{judge, outcome, bradley_terry}`): the pair's outcome
//! for `a` is `s_a = ½·(P_ab(A) + P_ba(B))`, each order's letters normalised to sum 1; the
//! ratings `r` maximise `Σ s·log σ(r_a − r_b) + (1 − s)·log σ(r_b − r_a)` and are centred to
//! mean 0, so `σ(r_a − r_b)` is the modelled probability that the judge prefers `a`'s answer.
//!
//! Verdicts go to `judgements.jsonl` as they come, one line per pair; a rerun judges only the
//! pairs missing from it.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use adasamp_curate::quality::bradley_terry::{self, Ratings};
use adasamp_curate::quality::judge::{Comparison, Judge};
use adasamp_curate::quality::outcome::{pair_outcome, LetterProbs};
use adasamp_curate::quality::swiss::Observation;
use adasamp_curate::stage::{progress, CandidateKey};
use adasamp_curate::CurateError;
use adasamp_engine::record::CandidateRecord;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::jsonl;
use crate::metrics::positions;

/// The judgements file of a run directory.
pub const JUDGEMENTS: &str = "judgements.jsonl";

/// One judged pair: the contenders `a` and `b` on one prompt and seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The prompt's id.
    pub prompt_id: String,
    /// The seed both generations used.
    pub seed: u64,
    /// One contender.
    pub a: String,
    /// The other.
    pub b: String,
    /// `[p(A), p(B)]` of the judge's first token with `a`'s answer shown first.
    pub a_first: [f64; 2],
    /// `[p(A), p(B)]` with `b`'s answer shown first.
    pub b_first: [f64; 2],
    /// `a`'s soft outcome in `[0, 1]` (`b`'s is `1 − outcome`).
    pub outcome: f64,
}

/// A pair's identity whatever the order of its contenders.
fn pair_key(prompt_id: &str, seed: u64, a: &str, b: &str) -> (String, u64, String, String) {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    (prompt_id.to_string(), seed, x.to_string(), y.to_string())
}

impl Verdict {
    /// The verdict of `a` vs `b` from the judge's letter probabilities in both orders.
    pub fn new(
        prompt_id: &str,
        seed: u64,
        a: &str,
        b: &str,
        a_first: LetterProbs,
        b_first: LetterProbs,
    ) -> Self {
        Self {
            prompt_id: prompt_id.to_string(),
            seed,
            a: a.to_string(),
            b: b.to_string(),
            a_first: [a_first.a, a_first.b],
            b_first: [b_first.a, b_first.b],
            outcome: pair_outcome(a_first, b_first).0,
        }
    }
}

/// One pair to judge: two contenders' generations of one prompt and seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Match<'r> {
    /// The prompt's id.
    pub prompt_id: String,
    /// The seed.
    pub seed: u64,
    /// One contender's name.
    pub a: String,
    /// The other's.
    pub b: String,
    /// The user prompt.
    pub question: &'r str,
    /// `a`'s generation.
    pub answer_a: &'r str,
    /// `b`'s generation.
    pub answer_b: &'r str,
}

/// Every pair of contenders on every (prompt, seed) of `records`, for the given prompts and
/// contenders (in their orders; `a` before `b` in contender order). A (prompt, seed) lacking a
/// contender's generation contributes the pairs it has.
pub fn matches<'r>(
    records: &'r [CandidateRecord],
    prompts: &[String],
    contenders: &[String],
    seeds: u64,
) -> Result<Vec<Match<'r>>> {
    let mut by_key: HashMap<CandidateKey, &CandidateRecord> = HashMap::new();
    for r in records {
        by_key.insert(CandidateKey::of(r)?, r);
    }
    let mut out = Vec::new();
    for p in prompts {
        for seed in 0..seeds {
            let get = |c: &String| {
                by_key.get(&CandidateKey {
                    prompt_id: p.clone(),
                    pipeline: c.clone(),
                    seed,
                })
            };
            for (i, a) in contenders.iter().enumerate() {
                for b in &contenders[i + 1..] {
                    if let (Some(ra), Some(rb)) = (get(a), get(b)) {
                        out.push(Match {
                            prompt_id: p.clone(),
                            seed,
                            a: a.clone(),
                            b: b.clone(),
                            question: &ra.prompt,
                            answer_a: &ra.generation,
                            answer_b: &rb.generation,
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The verdicts already in `path` (none when it is missing).
pub fn read_verdicts(path: &Path) -> Result<Vec<Verdict>> {
    Ok(jsonl::reopen::<Verdict>(path)?.done)
}

/// How many of `todo` have no verdict in `path` yet.
pub fn missing(todo: &[Match<'_>], path: &Path) -> Result<usize> {
    let done: HashSet<_> = read_verdicts(path)?
        .iter()
        .map(|v| pair_key(&v.prompt_id, v.seed, &v.a, &v.b))
        .collect();
    Ok(todo
        .iter()
        .filter(|m| !done.contains(&pair_key(&m.prompt_id, m.seed, &m.a, &m.b)))
        .count())
}

/// Judges the `todo` matches not yet in `path` (`batch` pairs per judge call, a progress bar),
/// appending each verdict as it comes, and returns every verdict of the file. A pair the judge
/// could not answer is an [`EvalError::Incomplete`] once the others are written; a call in
/// which every request to an endpoint failed stops at once with that error.
pub fn judge_all(
    todo: &[Match<'_>],
    judge: &mut dyn Judge,
    path: &Path,
    batch: usize,
) -> Result<Vec<Verdict>> {
    let mut file = jsonl::reopen::<Verdict>(path)?;
    let done: HashSet<_> = file
        .done
        .iter()
        .map(|v| pair_key(&v.prompt_id, v.seed, &v.a, &v.b))
        .collect();
    let left: Vec<&Match<'_>> = todo
        .iter()
        .filter(|m| !done.contains(&pair_key(&m.prompt_id, m.seed, &m.a, &m.b)))
        .collect();
    let bar = progress(left.len(), "pairs judged");
    let mut failed: Vec<String> = Vec::new();
    let mut written = Vec::new();
    for chunk in left.chunks(batch.max(1)) {
        let mut comparisons = Vec::with_capacity(2 * chunk.len());
        for m in chunk {
            comparisons.push(Comparison {
                question: m.question,
                answer_a: m.answer_a,
                answer_b: m.answer_b,
            });
            comparisons.push(Comparison {
                question: m.question,
                answer_a: m.answer_b,
                answer_b: m.answer_a,
            });
        }
        let verdicts = judge.judge(&comparisons)?;
        let down = !verdicts.is_empty()
            && verdicts
                .iter()
                .all(|v| matches!(v, Err(CurateError::Remote { .. })));
        if down {
            bar.finish_and_clear();
            if let Some(e) = verdicts.into_iter().find_map(|v| v.err()) {
                return Err(e.into());
            }
            return Ok(file.done);
        }
        let mut verdicts = verdicts.into_iter();
        for m in chunk {
            let ab = verdicts.next();
            let ba = verdicts.next();
            match (ab, ba) {
                (Some(Ok(ab)), Some(Ok(ba))) => {
                    let v = Verdict::new(&m.prompt_id, m.seed, &m.a, &m.b, ab, ba);
                    file.append(&v)?;
                    written.push(v);
                }
                (Some(Err(e)), _) | (_, Some(Err(e))) => failed.push(format!(
                    "{}/s{} {} vs {}: {e}",
                    m.prompt_id, m.seed, m.a, m.b
                )),
                _ => failed.push(format!(
                    "{}/s{} {} vs {}: the judge returned no verdict",
                    m.prompt_id, m.seed, m.a, m.b
                )),
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    if let Some(first) = failed.first() {
        return Err(EvalError::Incomplete {
            stage: "judging".into(),
            failed: failed.len(),
            first: first.clone(),
        });
    }
    let mut all = file.done;
    all.extend(written);
    Ok(all)
}

/// The verdicts as Bradley–Terry observations, per prompt (in `prompts` order), with players
/// numbered in `contenders` order; verdicts of other prompts or contenders are left out.
pub fn observations(
    verdicts: &[Verdict],
    prompts: &[String],
    contenders: &[String],
) -> Vec<Vec<Observation>> {
    let (p_index, c_index) = (positions(prompts), positions(contenders));
    let mut out = vec![Vec::new(); prompts.len()];
    for v in verdicts {
        let (Some(&p), Some(&a), Some(&b)) = (
            p_index.get(v.prompt_id.as_str()),
            c_index.get(v.a.as_str()),
            c_index.get(v.b.as_str()),
        ) else {
            continue;
        };
        out[p].push(Observation {
            first: a,
            second: b,
            outcome: v.outcome,
        });
    }
    out
}

/// Bradley–Terry ratings of `players` contenders from the per-prompt observations, prompt `i`
/// counted `counts[i]` times (a bootstrap resample; all ones for the data as it is).
pub fn fit(players: usize, per_prompt: &[Vec<Observation>], counts: &[usize]) -> Ratings {
    let mut obs = Vec::new();
    for (o, &c) in per_prompt.iter().zip(counts) {
        for _ in 0..c {
            obs.extend_from_slice(o);
        }
    }
    bradley_terry::fit(players, &obs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(a: f64, b: f64) -> LetterProbs {
        LetterProbs { a, b }
    }

    /// Hand-made verdicts: x beats y with soft outcome 0.75 on every prompt, y and z tie, x
    /// beats z 0.75: BT gives r_x − r_y = ln 3 exactly when the three agree (ln 3 both ways).
    #[test]
    fn ratings_among_contenders_from_hand_made_verdicts() {
        let names: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
        let prompts: Vec<String> = ["p1", "p2"].map(String::from).to_vec();
        let mut verdicts = Vec::new();
        for p in &prompts {
            // x first: A 0.6 B 0.2 → 0.75; y first: A 0.25 B 0.75 → x wins as B with 0.75
            verdicts.push(Verdict::new(
                p,
                0,
                "x",
                "y",
                probs(0.6, 0.2),
                probs(0.25, 0.75),
            ));
            verdicts.push(Verdict::new(
                p,
                0,
                "y",
                "z",
                probs(0.5, 0.5),
                probs(0.4, 0.4),
            ));
            // written the other way round: z vs x, z loses 0.25
            verdicts.push(Verdict::new(
                p,
                0,
                "z",
                "x",
                probs(0.1, 0.3),
                probs(0.3, 0.1),
            ));
        }
        assert!((verdicts[0].outcome - 0.75).abs() < 1e-12);
        assert!((verdicts[1].outcome - 0.5).abs() < 1e-12);
        assert!((verdicts[2].outcome - 0.25).abs() < 1e-12);
        let per_prompt = observations(&verdicts, &prompts, &names);
        assert_eq!(per_prompt[0].len(), 3);
        let r = fit(3, &per_prompt, &[1, 1]);
        assert!(r.identified);
        assert!(r.ratings.iter().sum::<f64>().abs() < 1e-12);
        let ln3 = 3f64.ln();
        assert!((r.ratings[0] - r.ratings[1] - ln3).abs() < 1e-8, "{r:?}");
        assert!((r.ratings[1] - r.ratings[2]).abs() < 1e-8, "{r:?}");
        // counting a prompt twice changes nothing when every prompt says the same
        let r2 = fit(3, &per_prompt, &[2, 0]);
        for (a, b) in r.ratings.iter().zip(&r2.ratings) {
            assert!((a - b).abs() < 1e-8);
        }
        // verdicts of unknown contenders or prompts are left out
        let only_xy = observations(&verdicts, &prompts[..1], &names[..2]);
        assert_eq!(only_xy.len(), 1);
        assert_eq!(only_xy[0].len(), 1);
    }

    /// A judge preferring the longer answer, or failing answers that contain "FAIL".
    struct LengthJudge {
        calls: usize,
    }

    impl Judge for LengthJudge {
        fn describe(&self) -> String {
            "length".into()
        }
        fn judge(
            &mut self,
            cs: &[Comparison<'_>],
        ) -> adasamp_curate::Result<Vec<adasamp_curate::Result<LetterProbs>>> {
            self.calls += 1;
            Ok(cs
                .iter()
                .map(|c| {
                    if c.answer_a.contains("FAIL") {
                        return Err(CurateError::BadParameter {
                            name: "answer".into(),
                            value: "FAIL".into(),
                            message: "unjudgeable".into(),
                        });
                    }
                    let longer = c.answer_a.len() > c.answer_b.len();
                    Ok(if longer {
                        probs(0.9, 0.1)
                    } else {
                        probs(0.1, 0.9)
                    })
                })
                .collect())
        }
    }

    fn record(prompt: &str, pipeline: &str, seed: u64, text: &str) -> CandidateRecord {
        let line = format!(
            r#"{{"id":"{prompt}/{pipeline}/s{seed}","prompt":"q {prompt}","generation":"{text}","sampler_info":{{"name":"{pipeline}","config":{{"name":"{pipeline}"}}}},"seed":{seed},"prompt_id":"{prompt}"}}"#
        );
        adasamp_engine::record::parse_line(&line, "t", 1).unwrap()
    }

    #[test]
    fn every_pair_is_judged_once_and_a_rerun_judges_nothing() {
        let mut recs = Vec::new();
        for p in ["p1", "p2"] {
            for seed in 0..2 {
                recs.push(record(p, "long", seed, "a long answer"));
                recs.push(record(p, "mid", seed, "medium"));
                recs.push(record(p, "short", seed, "s"));
            }
        }
        let prompts: Vec<String> = vec!["p1".into(), "p2".into()];
        let names: Vec<String> = vec!["long".into(), "mid".into(), "short".into()];
        let todo = matches(&recs, &prompts, &names, 2).unwrap();
        assert_eq!(todo.len(), 2 * 2 * 3);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JUDGEMENTS);
        let mut judge = LengthJudge { calls: 0 };
        let v = judge_all(&todo, &mut judge, &path, 5).unwrap();
        assert_eq!(v.len(), 12);
        assert_eq!(judge.calls, 3);
        let r = fit(3, &observations(&v, &prompts, &names), &[1, 1]);
        assert!(
            r.ratings[0] > r.ratings[1] && r.ratings[1] > r.ratings[2],
            "{r:?}"
        );
        // a kill mid-line: the torn verdict is judged again, nothing else
        let text = std::fs::read_to_string(&path).unwrap();
        let cut = text.len() - 10;
        std::fs::write(&path, &text[..cut]).unwrap();
        let mut again = LengthJudge { calls: 0 };
        let v2 = judge_all(&todo, &mut again, &path, 5).unwrap();
        assert_eq!((v2.len(), again.calls), (12, 1));
        let mut none = LengthJudge { calls: 0 };
        assert_eq!(judge_all(&todo, &mut none, &path, 5).unwrap().len(), 12);
        assert_eq!(none.calls, 0);
    }

    #[test]
    fn unjudgeable_pairs_are_reported_after_the_others_are_written() {
        let recs = vec![
            record("p1", "a", 0, "fine"),
            record("p1", "b", 0, "FAIL"),
            record("p2", "a", 0, "fine"),
            record("p2", "b", 0, "ok"),
        ];
        let prompts: Vec<String> = vec!["p1".into(), "p2".into()];
        let names: Vec<String> = vec!["a".into(), "b".into()];
        let todo = matches(&recs, &prompts, &names, 1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JUDGEMENTS);
        let e = judge_all(&todo, &mut LengthJudge { calls: 0 }, &path, 8)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("judging: 1 item(s) failed") && e.contains("p1/s0 a vs b"),
            "{e}"
        );
        assert_eq!(jsonl::reopen::<Verdict>(&path).unwrap().done.len(), 1);
    }
}
