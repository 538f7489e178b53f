//! The unit of the quality stage: the generations of one (prompt, seed) — one per pipeline —
//! which a tournament ranks against each other. Also the unit of resuming: a group's records
//! are written together, once the whole group is labelled.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use adasamp_engine::record::CandidateRecord;

use crate::error::{CurateError, Result};
use crate::stage::{
    read_records, record_name, reopen_group_output, CandidateKey, Output, StageReport,
};

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

/// A group-labelling stage resumed: the groups still to label (in input order), the output
/// reopened for appending, and the report with what was read and already done.
#[derive(Debug)]
pub struct Resumed {
    /// The groups whose records are not all in the output yet.
    pub todo: Vec<Group>,
    /// The output, appending after the complete groups.
    pub output: Output,
    /// The report so far.
    pub report: StageReport,
}

/// Starts the stage `stage` from `input` into `output`: reads and groups the records, reopens
/// the output ([`reopen_group_output`]: half-written groups are removed and labelled again) and
/// keeps the groups not done yet.
pub fn resume(stage: &str, input: &Path, output: &Path) -> Result<Resumed> {
    let records = read_records(input)?;
    let mut report = StageReport::new(stage, output);
    report.read = records.len();
    let all = by_prompt_and_seed(records)?;
    let reopened = reopen_group_output(output, &expected_keys(&all)?, group_of)?;
    report.already_done = reopened.already_done;
    if reopened.removed_partial > 0 {
        report.note(format!(
            "{} records of groups an earlier run left half-written were removed and labelled again",
            reopened.removed_partial
        ));
    }
    let todo = all
        .into_iter()
        .filter(|g| !reopened.complete.contains(&g.id()))
        .collect();
    Ok(Resumed {
        todo,
        output: reopened.output,
        report,
    })
}

/// Consecutive batches of `groups`, each grown until the `size` of its groups adds up to at
/// least `target` (one group at least; the last batch may be smaller).
pub fn batches(groups: &[Group], size: impl Fn(&Group) -> usize, target: usize) -> Vec<&[Group]> {
    let mut out = Vec::new();
    let (mut start, mut total) = (0, 0);
    for (i, g) in groups.iter().enumerate() {
        total += size(g);
        if total >= target {
            out.push(&groups[start..=i]);
            (start, total) = (i + 1, 0);
        }
    }
    if start < groups.len() {
        out.push(&groups[start..]);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A candidate record of `prompt_id` (question `question <prompt_id>`) with `pipeline`,
    /// `seed` and `generation`.
    pub(crate) fn rec(
        prompt_id: &str,
        pipeline: &str,
        seed: u64,
        generation: &str,
    ) -> CandidateRecord {
        let mut r = crate::stage::tests::rec(prompt_id, pipeline, seed);
        r.prompt = format!("question {prompt_id}");
        r.generation = generation.into();
        r
    }

    #[test]
    fn batches_reach_their_target() {
        let g: Vec<Group> = (0..5)
            .map(|k| Group {
                prompt_id: k.to_string(),
                seed: 0,
                records: vec![rec("p", "t", 0, "g"); k + 1],
            })
            .collect();
        let sizes = |b: Vec<&[Group]>| b.iter().map(|b| b.len()).collect::<Vec<_>>();
        // sizes 1, 2, 3, 4, 5
        assert_eq!(sizes(batches(&g, |g| g.records.len(), 3)), [2, 1, 1, 1]);
        assert_eq!(sizes(batches(&g, |g| g.records.len(), 1)), [1, 1, 1, 1, 1]);
        assert_eq!(sizes(batches(&g, |g| g.records.len(), 100)), [5]);
        assert!(batches(&[], |g| g.records.len(), 3).is_empty());
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
