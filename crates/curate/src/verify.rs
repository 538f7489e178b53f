//! `verify`: a prompt is kept only when its candidates are complete — every pipeline of the
//! grid with every seed `0..N`, each (pipeline, seed) exactly once (SPEC 4). The clean file holds
//! the complete prompts' records (in input order), written atomically; the report says, per
//! prompt, what is missing or duplicated (the reference implementation crashes while
//! reporting this).
//!
//! Records of a pipeline outside the grid, or of a seed outside `0..N`, are not part of the
//! check: they are dropped (reported per prompt) and do not make their prompt incomplete.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use adasamp_engine::files::write_atomic_with;
use adasamp_engine::record::{write_record, CandidateRecord};

use crate::error::{CurateError, Result};
use crate::stage::{read_records, CandidateKey, StageReport};

/// What a complete prompt has: the grid's pipeline names and the number of seeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Pipeline names (each once).
    pub pipelines: Vec<String>,
    /// Seeds `0..seeds`.
    pub seeds: u64,
}

/// One prompt's check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PromptCheck {
    /// The prompt's id.
    pub prompt_id: String,
    /// Its records within the grid (duplicates included).
    pub records: usize,
    /// (pipeline, seed) pairs with no record.
    pub missing: Vec<(String, u64)>,
    /// (pipeline, seed) pairs with more than one record, and how many.
    pub duplicated: Vec<(String, u64, usize)>,
    /// Records of a pipeline outside the grid, by pipeline.
    pub unknown_pipelines: BTreeMap<String, usize>,
    /// Records of a seed outside `0..N`, by seed.
    pub seeds_out_of_range: BTreeMap<u64, usize>,
}

impl PromptCheck {
    /// Whether the prompt is kept: nothing missing, nothing duplicated.
    pub fn complete(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty()
    }

    /// What is wrong with it, on one line (empty when complete).
    pub fn problems(&self, expected_per_prompt: usize) -> String {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            let shown: Vec<String> = self
                .missing
                .iter()
                .map(|(p, s)| format!("{p}/s{s}"))
                .collect();
            parts.push(format!(
                "missing {} of {expected_per_prompt}: {}",
                self.missing.len(),
                list(&shown)
            ));
        }
        if !self.duplicated.is_empty() {
            let shown: Vec<String> = self
                .duplicated
                .iter()
                .map(|(p, s, n)| format!("{p}/s{s} ×{n}"))
                .collect();
            parts.push(format!("duplicated: {}", list(&shown)));
        }
        parts.join("; ")
    }
}

/// At most 8 items of a list, then how many more.
fn list(items: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut s = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(", … and {} more", items.len() - SHOWN));
    }
    s
}

/// Checks every prompt of `records` (in order of first appearance; then the ids of
/// `prompt_ids` that have no record at all, each missing everything). Errors: a record
/// without a key (prompt id, seed).
pub fn check(
    records: &[CandidateRecord],
    expected: &Expected,
    prompt_ids: &[String],
) -> Result<Vec<PromptCheck>> {
    let mut order: Vec<String> = Vec::new();
    let mut counts: HashMap<String, HashMap<(String, u64), usize>> = HashMap::new();
    let mut checks: HashMap<String, PromptCheck> = HashMap::new();
    for r in records {
        let key = CandidateKey::of(r)?;
        let c = checks.entry(key.prompt_id.clone()).or_insert_with(|| {
            order.push(key.prompt_id.clone());
            PromptCheck {
                prompt_id: key.prompt_id.clone(),
                ..PromptCheck::default()
            }
        });
        if !expected.pipelines.contains(&key.pipeline) {
            *c.unknown_pipelines.entry(key.pipeline).or_default() += 1;
        } else if key.seed >= expected.seeds {
            *c.seeds_out_of_range.entry(key.seed).or_default() += 1;
        } else {
            c.records += 1;
            *counts
                .entry(key.prompt_id)
                .or_default()
                .entry((key.pipeline, key.seed))
                .or_default() += 1;
        }
    }
    for id in prompt_ids {
        if !checks.contains_key(id) {
            order.push(id.clone());
            checks.insert(
                id.clone(),
                PromptCheck {
                    prompt_id: id.clone(),
                    ..PromptCheck::default()
                },
            );
        }
    }
    let none = HashMap::new();
    let mut out = Vec::with_capacity(order.len());
    for id in order {
        let mut c = checks.remove(&id).unwrap_or_default();
        let seen = counts.get(&id).unwrap_or(&none);
        for p in &expected.pipelines {
            for s in 0..expected.seeds {
                match seen.get(&(p.clone(), s)).copied().unwrap_or(0) {
                    0 => c.missing.push((p.clone(), s)),
                    1 => {}
                    n => c.duplicated.push((p.clone(), s, n)),
                }
            }
        }
        out.push(c);
    }
    Ok(out)
}

/// What `verify` found and wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Per prompt, in order.
    pub prompts: Vec<PromptCheck>,
    /// Records read, written, dropped by reason (per prompt).
    pub report: StageReport,
}

/// Reads `input`, checks it against `expected` (and the prompts of `prompt_ids` without any
/// record), and writes the complete prompts' records to `output` atomically.
pub fn verify(
    input: &Path,
    output: &Path,
    expected: &Expected,
    prompt_ids: &[String],
) -> Result<Verified> {
    if expected.pipelines.is_empty() || expected.seeds == 0 {
        return Err(CurateError::BadParameter {
            name: if expected.seeds == 0 {
                "seeds"
            } else {
                "pipelines"
            }
            .into(),
            value: "0".into(),
            message: "a complete prompt needs at least one pipeline and one seed".into(),
        });
    }
    let records = read_records(input)?;
    let prompts = check(&records, expected, prompt_ids)?;
    let per_prompt = expected.pipelines.len() * expected.seeds as usize;
    let mut report = StageReport::new("verify", output);
    report.read = records.len();
    let mut keep: HashMap<&str, bool> = HashMap::new();
    for c in &prompts {
        keep.insert(&c.prompt_id, c.complete());
        for (p, n) in &c.unknown_pipelines {
            report.drop(
                format!("prompt {}: pipeline `{p}` is not in the grid", c.prompt_id),
                *n,
            );
        }
        for (s, n) in &c.seeds_out_of_range {
            report.drop(
                format!(
                    "prompt {}: seed {s} is outside 0..{}",
                    c.prompt_id, expected.seeds
                ),
                *n,
            );
        }
        if !c.complete() {
            let why = format!(
                "prompt {} incomplete: {}",
                c.prompt_id,
                c.problems(per_prompt)
            );
            if c.records == 0 {
                report.note(format!("{why} (it has no record)"));
            } else {
                report.drop(why, c.records);
            }
        }
    }
    let kept: Vec<&CandidateRecord> = records
        .iter()
        .filter(|r| {
            CandidateKey::of(r).is_ok_and(|k| {
                keep.get(k.prompt_id.as_str()).copied().unwrap_or(false)
                    && expected.pipelines.contains(&k.pipeline)
                    && k.seed < expected.seeds
            })
        })
        .collect();
    write_atomic_with(output, |f, tmp| {
        let mut w = std::io::BufWriter::new(f);
        for r in &kept {
            write_record(&mut w, r).map_err(CurateError::io(tmp))?;
        }
        std::io::Write::flush(&mut w).map_err(CurateError::io(tmp))
    })?;
    report.written = kept.len();
    let complete = prompts.iter().filter(|c| c.complete()).count();
    report.note(format!(
        "{complete} of {} prompt(s) complete ({} pipeline(s) × {} seed(s) each)",
        prompts.len(),
        expected.pipelines.len(),
        expected.seeds
    ));
    Ok(Verified { prompts, report })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels;
    use crate::stage::tests::rec;

    fn expected() -> Expected {
        Expected {
            pipelines: vec!["a".into(), "b".into()],
            seeds: 2,
        }
    }

    fn full(prompt: &str) -> Vec<CandidateRecord> {
        ["a", "b"]
            .iter()
            .flat_map(|p| (0..2).map(move |s| rec(prompt, p, s)))
            .collect()
    }

    #[test]
    fn complete_missing_and_duplicated_prompts() {
        let mut rs = full("q1");
        let mut q2 = full("q2");
        q2.remove(1); // a/s1
        rs.extend(q2);
        let mut q3 = full("q3");
        q3.push(rec("q3", "b", 0));
        rs.extend(q3);
        rs.push(rec("q1", "zzz", 0));
        rs.push(rec("q1", "a", 7));
        let c = check(&rs, &expected(), &["q1".into(), "q4".into()]).unwrap();
        let ids: Vec<&str> = c.iter().map(|c| c.prompt_id.as_str()).collect();
        assert_eq!(ids, ["q1", "q2", "q3", "q4"]);
        assert!(c[0].complete());
        assert_eq!(c[0].unknown_pipelines["zzz"], 1);
        assert_eq!(c[0].seeds_out_of_range[&7], 1);
        assert_eq!(c[1].missing, [("a".to_string(), 1)]);
        assert_eq!(c[2].duplicated, [("b".to_string(), 0, 2)]);
        assert_eq!(c[3].missing.len(), 4);
        assert_eq!(c[1].problems(4), "missing 1 of 4: a/s1");
        assert_eq!(c[2].problems(4), "duplicated: b/s0 ×2");
    }

    #[test]
    fn verify_writes_complete_prompts_only_and_reports_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("cand.jsonl");
        let output = dir.path().join("clean.jsonl");
        let mut rs = full("q1");
        rs.extend(full("q2").into_iter().skip(1));
        rs.push(rec("q1", "zzz", 0));
        let mut text = Vec::new();
        for r in &rs {
            write_record(&mut text, r).unwrap();
        }
        std::fs::write(&input, text).unwrap();
        let v = verify(&input, &output, &expected(), &["q9".into()]).unwrap();
        let clean = read_records(&output).unwrap();
        assert_eq!(clean, full("q1"));
        assert_eq!((v.report.read, v.report.written), (8, 4));
        let s = v.report.to_string();
        assert!(
            s.contains("3 × prompt q2 incomplete: missing 1 of 4: a/s0"),
            "{s}"
        );
        assert!(
            s.contains("1 × prompt q1: pipeline `zzz` is not in the grid"),
            "{s}"
        );
        assert!(
            s.contains("q9 incomplete: missing 4 of 4") && s.contains("no record"),
            "{s}"
        );
        assert!(s.contains("1 of 3 prompt(s) complete"), "{s}");
        // a record without its prompt id is an error naming it
        let mut bad = rec("q1", "a", 0);
        bad.extra.clear();
        let mut text = Vec::new();
        write_record(&mut text, &bad).unwrap();
        std::fs::write(&input, text).unwrap();
        let e = verify(&input, &output, &expected(), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("q1/a/s0") && e.contains(labels::PROMPT_ID),
            "{e}"
        );
        // the clean file of the earlier run is untouched by the failed one
        assert_eq!(read_records(&output).unwrap(), full("q1"));
    }

    #[test]
    fn many_missing_keys_are_listed_briefly() {
        let e = Expected {
            pipelines: (0..5).map(|i| format!("p{i}")).collect(),
            seeds: 4,
        };
        let c = check(&[rec("q", "p0", 0)], &e, &[]).unwrap();
        let s = c[0].problems(20);
        assert!(s.starts_with("missing 19 of 20: p0/s1, p0/s2"), "{s}");
        assert!(s.ends_with("… and 11 more"), "{s}");
    }
}
