//! `label quality` with a pairwise judge: per (prompt, seed) group a Swiss tournament among its
//! pipelines' generations, each pair judged in both orders, then Bradley–Terry ratings on the
//! soft outcomes. Writes every input record with [`labels::QUALITY`] (the rating) and
//! [`labels::QUALITY_SCORE`] (the accumulated soft score) added.
//!
//! Many groups are played at once: their rounds advance together, and every comparison of a
//! round of all of them goes to the judge in one call (one scheduler run for a local judge,
//! concurrent requests for an endpoint). A group's records are written together once its
//! tournament is over; a kill loses at most the groups in play, which the next run plays again
//! ([`reopen_group_output`]). A group whose comparisons the judge could not answer is not
//! written (the report says why; a rerun tries it again); a call in which every request to an
//! endpoint failed stops the stage (the endpoint is down).

use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use super::bradley_terry;
use super::groups::{self, Group};
use super::judge::{Comparison, Judge};
use super::outcome::pair_outcome;
use super::swiss::Swiss;
use crate::error::{CurateError, Result};
use crate::labels;
use crate::stage::{progress, Output, StageReport};

/// How tournaments are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TournamentOptions {
    /// Rounds beyond ⌈log₂ n⌉ (the reference plays 1).
    pub extra_rounds: usize,
    /// Seed of the round-1 random orders (each group draws its own stream from it, its prompt
    /// id and its seed).
    pub seed: u64,
    /// Comparisons per judge call to aim for: groups are played together until their first
    /// round has at least this many.
    pub batch: usize,
}

impl Default for TournamentOptions {
    fn default() -> Self {
        Self {
            extra_rounds: 1,
            seed: 0,
            batch: 64,
        }
    }
}

/// The most failed groups named in the report's notes.
const NAMED_FAILURES: usize = 10;

/// FNV-1a (64-bit) of `bytes`: a stable stream number per group.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The random stream of a group's round-1 order.
pub fn group_stream(prompt_id: &str, seed: u64) -> u64 {
    fnv1a(format!("{prompt_id}\u{0}{seed}").as_bytes())
}

/// A group in play.
struct Game<'g> {
    group: &'g Group,
    swiss: Swiss,
    failure: Option<String>,
}

/// Labels the records of `input` into `output` (see the module doc).
pub fn label_quality(
    input: &Path,
    output: &Path,
    judge: &mut dyn Judge,
    opts: &TournamentOptions,
) -> Result<StageReport> {
    let groups::Resumed {
        todo,
        output: mut out,
        mut report,
    } = groups::resume("label quality", input, output)?;
    let new_game = |g: &'_ Group| {
        Swiss::new(
            g.records.len(),
            opts.extra_rounds,
            opts.seed,
            group_stream(&g.prompt_id, g.seed),
        )
    };
    let total_pairs: usize = todo.iter().map(|g| new_game(g).total_pairs()).sum();
    let bar = progress(total_pairs, "pairs");
    let started = Instant::now();
    let mut tally = Tally::default();
    let first_round = |g: &Group| 2 * (g.records.len() / 2);
    for batch in groups::batches(&todo, first_round, opts.batch) {
        let mut games: Vec<Game<'_>> = batch
            .iter()
            .map(|g| Game {
                group: g,
                swiss: new_game(g),
                failure: None,
            })
            .collect();
        play(&mut games, judge, &bar, &mut tally)?;
        for g in &games {
            write_group(g, &mut out, &mut report, &mut tally)?;
        }
    }
    bar.finish_and_clear();
    report.written = out.written();
    summarise(&mut report, &tally, started.elapsed().as_secs_f64(), judge);
    Ok(report)
}

/// What happened over the whole run.
#[derive(Debug, Default)]
struct Tally {
    pairs: usize,
    singletons: usize,
    not_identified: usize,
    failed: Vec<String>,
}

/// Plays every game's rounds to the end, all games' rounds together.
fn play(
    games: &mut [Game<'_>],
    judge: &mut dyn Judge,
    bar: &indicatif::ProgressBar,
    tally: &mut Tally,
) -> Result<()> {
    loop {
        let mut comparisons = Vec::new();
        let mut pairs = Vec::new();
        for (gi, game) in games.iter_mut().enumerate() {
            if game.failure.is_some() {
                continue;
            }
            let Some(round) = game.swiss.next_round() else {
                continue;
            };
            let q = game.group.question();
            for (p, o) in round.pairs {
                let (x, y) = (
                    &game.group.records[p].generation,
                    &game.group.records[o].generation,
                );
                comparisons.push(Comparison {
                    question: q,
                    answer_a: x,
                    answer_b: y,
                });
                comparisons.push(Comparison {
                    question: q,
                    answer_a: y,
                    answer_b: x,
                });
                pairs.push((gi, p, o));
            }
        }
        if pairs.is_empty() {
            return Ok(());
        }
        let verdicts = judge.judge(&comparisons)?;
        // Every request to an endpoint failed: the endpoint is down, not these comparisons.
        let down = verdicts
            .iter()
            .all(|v| matches!(v, Err(CurateError::Remote { .. })));
        if down && !verdicts.is_empty() {
            if let Some(e) = verdicts.into_iter().find_map(|v| v.err()) {
                return Err(e);
            }
            return Ok(());
        }
        let mut verdicts = verdicts.into_iter();
        for (gi, p, o) in pairs {
            let missing = || CurateError::Remote {
                endpoint: judge.describe(),
                message: format!("no verdict for some of {} comparisons", comparisons.len()),
            };
            let xy = verdicts.next().unwrap_or_else(|| Err(missing()));
            let yx = verdicts.next().unwrap_or_else(|| Err(missing()));
            let game = &mut games[gi];
            match (xy, yx) {
                (Ok(xy), Ok(yx)) => {
                    let (s, _) = pair_outcome(xy, yx);
                    game.swiss.record(p, o, s);
                    tally.pairs += 1;
                }
                (Err(e), _) | (_, Err(e)) => {
                    if game.failure.is_none() {
                        game.failure = Some(e.to_string());
                    }
                }
            }
            bar.inc(1);
        }
    }
}

/// Writes a finished game's records with their labels, or reports why it is not written.
fn write_group(
    game: &Game<'_>,
    out: &mut Output,
    report: &mut StageReport,
    tally: &mut Tally,
) -> Result<()> {
    let g = game.group;
    if let Some(why) = &game.failure {
        report.drop(
            "generations whose group the judge could not finish (rerun to retry)",
            g.records.len(),
        );
        if tally.failed.len() < NAMED_FAILURES {
            tally.failed.push(format!("{}: {why}", g.name()));
        }
        return Ok(());
    }
    if g.records.len() < 2 {
        tally.singletons += 1;
        for r in &g.records {
            let mut r = r.clone();
            r.extra.remove(labels::QUALITY);
            r.extra.remove(labels::QUALITY_SCORE);
            out.append(&r)?;
        }
        return Ok(());
    }
    let fit = bradley_terry::fit(g.records.len(), game.swiss.observations());
    tally.not_identified += usize::from(!fit.identified);
    for (k, r) in g.records.iter().enumerate() {
        let mut r = r.clone();
        r.extra
            .insert(labels::QUALITY.into(), number(fit.ratings[k]));
        r.extra
            .insert(labels::QUALITY_SCORE.into(), number(game.swiss.scores()[k]));
        out.append(&r)?;
    }
    Ok(())
}

/// A finite number as JSON (`null` otherwise — not reachable for ratings and scores, which are
/// finite by construction).
fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Adds the run's notes to the report.
fn summarise(report: &mut StageReport, tally: &Tally, seconds: f64, judge: &dyn Judge) {
    report.note(format!("judge: {}", judge.describe()));
    if tally.pairs > 0 {
        report.note(format!(
            "judged {} pairs ({} judge prompts) in {seconds:.1} s: {:.2} pairs/s",
            tally.pairs,
            2 * tally.pairs,
            tally.pairs as f64 / seconds.max(1e-9)
        ));
    }
    if tally.singletons > 0 {
        report.note(format!(
            "{} groups of a single generation: nothing to compare, written without a quality label",
            tally.singletons
        ));
    }
    if tally.not_identified > 0 {
        report.note(format!(
            "{} groups have a generation (or set) that won or lost every judged pair outright: their \
             Bradley–Terry ratings are bounded only by the fit's tolerance",
            tally.not_identified
        ));
    }
    for f in &tally.failed {
        report.note(format!("not labelled: {f}"));
    }
    for n in judge.notes() {
        report.note(n);
    }
}

#[cfg(test)]
mod tests {
    use super::super::groups::tests::rec;
    use super::super::outcome::LetterProbs;
    use super::*;
    use crate::stage::read_records;

    /// A judge preferring the longer answer (probabilities from the length difference), failing
    /// comparisons whose answers contain "FAIL", and counting calls.
    struct LengthJudge {
        calls: usize,
        seen: usize,
        fail_all: bool,
    }

    impl Judge for LengthJudge {
        fn describe(&self) -> String {
            "length judge".into()
        }
        fn judge(
            &mut self,
            cs: &[Comparison<'_>],
        ) -> Result<Vec<Result<LetterProbs, CurateError>>> {
            self.calls += 1;
            self.seen += cs.len();
            Ok(cs
                .iter()
                .map(|c| {
                    if c.answer_a.contains("TOO LONG") || c.answer_b.contains("TOO LONG") {
                        return Err(CurateError::BadParameter {
                            name: "judge context".into(),
                            value: "8".into(),
                            message: "too long".into(),
                        });
                    }
                    if self.fail_all || c.answer_a.contains("FAIL") || c.answer_b.contains("FAIL") {
                        return Err(CurateError::Remote {
                            endpoint: "fake".into(),
                            message: "down".into(),
                        });
                    }
                    let d = c.answer_a.len() as f64 - c.answer_b.len() as f64;
                    let pa = 1.0 / (1.0 + (-d / 4.0).exp());
                    // a constant position bias towards A the two orders cancel
                    Ok(LetterProbs {
                        a: 0.8 * pa + 0.1,
                        b: 0.8 * (1.0 - pa),
                    })
                })
                .collect())
        }
    }

    fn write(path: &Path, recs: &[adasamp_engine::record::CandidateRecord]) {
        let mut text = Vec::new();
        for r in recs {
            adasamp_engine::record::write_record(&mut text, r).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }

    fn candidates() -> Vec<adasamp_engine::record::CandidateRecord> {
        let mut v = Vec::new();
        for (p, n) in [("q1", 5), ("q2", 4)] {
            for seed in 0..2 {
                for k in 0..n {
                    v.push(rec(p, &format!("t{k}"), seed, &"x".repeat(1 + 3 * k)));
                }
            }
        }
        v.push(rec("solo", "t0", 0, "alone"));
        v
    }

    #[test]
    fn ranks_by_the_judge_and_writes_every_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
        write(&input, &candidates());
        let mut judge = LengthJudge {
            calls: 0,
            seen: 0,
            fail_all: false,
        };
        let opts = TournamentOptions {
            batch: 10,
            ..Default::default()
        };
        let report = label_quality(&input, &output, &mut judge, &opts).unwrap();
        assert_eq!(
            (report.read, report.written, report.dropped_total()),
            (19, 19, 0)
        );
        // 5 players: 3 + 1 rounds of 2 pairs; 4 players: 2 + 1 rounds of 2 pairs; both seeds
        let pairs = 2 * (4 * 2 + 3 * 2);
        assert_eq!(judge.seen, 2 * pairs);
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains(&format!("judged {pairs} pairs"))),
            "{report}"
        );
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("1 groups of a single generation")),
            "{report}"
        );
        // batched: groups played together, one call per round of a batch
        assert!(judge.calls < pairs / 2, "{} calls", judge.calls);
        let out = read_records(&output).unwrap();
        assert_eq!(out.len(), 19);
        for g in groups::by_prompt_and_seed(out).unwrap() {
            if g.records.len() == 1 {
                assert!(!g.records[0].extra.contains_key(labels::QUALITY));
                continue;
            }
            let q: Vec<f64> = g
                .records
                .iter()
                .map(|r| r.extra[labels::QUALITY].as_f64().unwrap())
                .collect();
            // longer answers rate higher (pipelines t0 < t1 < … have longer answers)
            assert!(q.windows(2).all(|w| w[0] < w[1]), "{}: {q:?}", g.name());
            assert!(q.iter().sum::<f64>().abs() < 1e-9);
            let s: f64 = g
                .records
                .iter()
                .map(|r| r.extra[labels::QUALITY_SCORE].as_f64().unwrap())
                .sum();
            let n = g.records.len();
            let rounds = super::super::swiss::rounds_for(n, 1);
            assert!((s - (rounds * (n / 2)) as f64 - 0.5 * (rounds * (n % 2)) as f64).abs() < 1e-9);
        }
        // a rerun has nothing to do
        let mut again = LengthJudge {
            calls: 0,
            seen: 0,
            fail_all: false,
        };
        let r = label_quality(&input, &output, &mut again, &opts).unwrap();
        assert_eq!((r.already_done, r.written, again.calls), (19, 0, 0));
    }

    #[test]
    fn results_do_not_depend_on_the_batch_and_resume_after_a_kill() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        write(&input, &candidates());
        let run = |out: &Path, batch: usize| {
            let mut j = LengthJudge {
                calls: 0,
                seen: 0,
                fail_all: false,
            };
            label_quality(
                &input,
                out,
                &mut j,
                &TournamentOptions {
                    batch,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let whole = dir.path().join("whole.jsonl");
        run(&whole, 1000);
        let by_one = dir.path().join("by_one.jsonl");
        run(&by_one, 1);
        let sorted = |p: &Path| {
            let mut v: Vec<String> = std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&whole), sorted(&by_one));
        // a kill in the middle of the third group's records, mid-line
        let text = std::fs::read_to_string(&whole).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let resumed = dir.path().join("resumed.jsonl");
        let cut = format!("{}\n{}", lines[..12].join("\n"), &lines[12][..20]);
        std::fs::write(&resumed, cut).unwrap();
        let r = run(&resumed, 4);
        assert!(r.notes.iter().any(|n| n.contains("half-written")), "{r}");
        assert_eq!(r.already_done + r.written, 19, "{r}");
        assert_eq!(sorted(&resumed), sorted(&whole));
    }

    #[test]
    fn failed_groups_are_not_written_and_a_dead_judge_stops_the_stage() {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
        let mut recs = candidates();
        recs[0].generation = "FAIL".into(); // q1, seed 0
        write(&input, &recs);
        let mut judge = LengthJudge {
            calls: 0,
            seen: 0,
            fail_all: false,
        };
        let r = label_quality(&input, &output, &mut judge, &TournamentOptions::default()).unwrap();
        assert_eq!(r.written, 14, "{r}");
        assert_eq!(r.dropped_total(), 5);
        assert!(
            r.notes.iter().any(|n| n.contains("q1/s0: fake: down")),
            "{r}"
        );
        // every comparison failing: an error, nothing more written
        let out2 = dir.path().join("out2.jsonl");
        let mut dead = LengthJudge {
            calls: 0,
            seen: 0,
            fail_all: true,
        };
        let e = label_quality(&input, &out2, &mut dead, &TournamentOptions::default()).unwrap_err();
        assert!(e.to_string().contains("down"), "{e}");
        assert!(read_records(&out2).unwrap().is_empty());
        // every comparison of a call unjudgeable for its own reason (not a dead endpoint): the
        // group alone is dropped, the stage goes on
        let mut recs = candidates();
        for r in recs.iter_mut().filter(|r| r.extra["prompt_id"] == "q2") {
            r.generation = "TOO LONG".into();
        }
        write(&input, &recs);
        let out3 = dir.path().join("out3.jsonl");
        let opts = TournamentOptions {
            batch: 1,
            ..Default::default()
        };
        let r = label_quality(&input, &out3, &mut judge, &opts).unwrap();
        assert_eq!((r.written, r.dropped_total()), (11, 8), "{r}");
        assert!(
            r.notes.iter().any(|n| n.contains("q2/s1: judge context")),
            "{r}"
        );
    }
}
