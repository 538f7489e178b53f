//! The unit of the quality stage: the generations of one (prompt, seed) — one per pipeline —
//! which a tournament ranks against each other. Also the unit of resuming: a group's records
//! are written together, once the whole group is labelled.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use adasamp_engine::record::CandidateRecord;

use crate::error::{CurateError, Result};
use crate::stage::{record_name, CandidateKey};

/// A (prompt id, seed) pair.
pub type GroupId = (String, u64);

/// The generations of one prompt and seed, ordered by pipeline name.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The prompt's id.
    pub prompt_id: String,
    /// The seed.
    pub seed: u64,
    /// The records, one per pipeline, by pipeline name.
    pub records: Vec<CandidateRecord>,
}

impl Group {
    /// `(prompt id, seed)`.
    pub fn id(&self) -> GroupId {
        (self.prompt_id.clone(), self.seed)
    }

    /// The user prompt every generation answers (the first record's).
    pub fn question(&self) -> &str {
        self.records.first().map_or("", |r| r.prompt.as_str())
    }

    /// The keys of its records.
    pub fn keys(&self) -> Result<BTreeSet<CandidateKey>> {
        self.records.iter().map(CandidateKey::of).collect()
    }

    /// `<prompt id>/s<seed>`, for messages.
    pub fn name(&self) -> String {
        format!("{}/s{}", self.prompt_id, self.seed)
    }
}

/// The group of a record key.
pub fn group_of(k: &CandidateKey) -> GroupId {
    (k.prompt_id.clone(), k.seed)
}

/// Splits records into (prompt, seed) groups, in the order each group first appears; within a
/// group, by pipeline name. A record without a prompt id or seed, or a second record of the same
/// (prompt, pipeline, seed), is an error (the `verify` stage removes duplicates).
pub fn by_prompt_and_seed(records: Vec<CandidateRecord>) -> Result<Vec<Group>> {
    let mut index: HashMap<GroupId, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut seen: BTreeSet<CandidateKey> = BTreeSet::new();
    for r in records {
        let k = CandidateKey::of(&r)?;
        if !seen.insert(k.clone()) {
            return Err(CurateError::BadField {
                id: record_name(&r),
                field: "sampler_info.name".into(),
                message: format!(
                    "a second record of prompt {:?}, pipeline {:?}, seed {} (verify the candidates first)",
                    k.prompt_id, k.pipeline, k.seed
                ),
            });
        }
        let gid = group_of(&k);
        let at = *index.entry(gid).or_insert_with(|| {
            groups.push(Group {
                prompt_id: k.prompt_id.clone(),
                seed: k.seed,
                records: Vec::new(),
            });
            groups.len() - 1
        });
        groups[at].records.push(r);
    }
    for g in &mut groups {
        g.records
            .sort_by(|a, b| a.sampler_info.name.cmp(&b.sampler_info.name));
    }
    Ok(groups)
}

/// Each group's record keys (for [`crate::stage::reopen_group_output`]).
pub fn expected_keys(groups: &[Group]) -> Result<BTreeMap<GroupId, BTreeSet<CandidateKey>>> {
    groups.iter().map(|g| Ok((g.id(), g.keys()?))).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::labels;
    use adasamp_engine::record::SamplerInfo;
    use adasamp_sampling::PipelineSpec;
    use serde_json::Map;

    /// A candidate record of `prompt_id` with `pipeline`, `seed` and `generation`.
    pub(crate) fn rec(
        prompt_id: &str,
        pipeline: &str,
        seed: u64,
        generation: &str,
    ) -> CandidateRecord {
        let mut extra = Map::new();
        extra.insert(labels::PROMPT_ID.into(), prompt_id.into());
        let key = CandidateKey {
            prompt_id: prompt_id.into(),
            pipeline: pipeline.into(),
            seed,
        };
        CandidateRecord {
            id: Some(key.record_id()),
            prompt: format!("question {prompt_id}"),
            system_prompt: None,
            raw: false,
            generation: generation.into(),
            generation_tokens: None,
            sampler_info: SamplerInfo {
                name: pipeline.into(),
                config: PipelineSpec {
                    name: pipeline.into(),
                    weight: 1.0,
                    processors: Vec::new(),
                },
                extra: Map::new(),
            },
            seed: Some(seed),
            finish_reason: None,
            usage: None,
            logprobs: None,
            extra,
        }
    }

    #[test]
    fn groups_in_first_appearance_order_with_pipelines_sorted() {
        let recs = vec![
            rec("q2", "t1", 0, "a"),
            rec("q1", "t2", 0, "b"),
            rec("q2", "t0", 0, "c"),
            rec("q1", "t1", 1, "d"),
            rec("q1", "t0", 0, "e"),
        ];
        let g = by_prompt_and_seed(recs).unwrap();
        let ids: Vec<_> = g.iter().map(Group::name).collect();
        assert_eq!(ids, ["q2/s0", "q1/s0", "q1/s1"]);
        let pipes: Vec<_> = g[1]
            .records
            .iter()
            .map(|r| r.sampler_info.name.as_str())
            .collect();
        assert_eq!(pipes, ["t0", "t2"]);
        assert_eq!(g[0].question(), "question q2");
        assert_eq!(expected_keys(&g).unwrap()[&("q1".to_string(), 1)].len(), 1);
    }

    #[test]
    fn duplicates_and_missing_keys_are_errors() {
        let e = by_prompt_and_seed(vec![rec("q", "t", 0, "a"), rec("q", "t", 0, "b")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("q/t/s0") && e.contains("second record"), "{e}");
        let mut r = rec("q", "t", 0, "a");
        r.seed = None;
        assert!(by_prompt_and_seed(vec![r])
            .unwrap_err()
            .to_string()
            .contains("seed"));
    }
}
