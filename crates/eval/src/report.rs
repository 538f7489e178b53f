//! The scoreboard: [`EvalReport`] (written as `report.json`), its Markdown table (`report.md`)
//! and the verdict sentence.

use std::path::Path;

use adasamp_engine::files::write_atomic;
use serde::{Deserialize, Serialize};

use crate::bootstrap::Interval;
use crate::contender::ContenderKind;
use crate::error::{EvalError, Result};

/// `report.json`'s file name.
pub const REPORT_JSON: &str = "report.json";
/// `report.md`'s file name.
pub const REPORT_MD: &str = "report.md";

/// Verifiable accuracy with its interval and the number of prompts with answers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Mean over prompts with answers of the fraction of seeds answered correctly.
    pub value: f64,
    /// 2.5th bootstrap percentile.
    pub lo: f64,
    /// 97.5th bootstrap percentile.
    pub hi: f64,
    /// Prompts with answers.
    pub n: usize,
}

impl Accuracy {
    /// From an interval and a prompt count.
    pub fn new(i: Interval, n: usize) -> Self {
        Self {
            value: i.value,
            lo: i.lo,
            hi: i.hi,
            n,
        }
    }
}

/// One contender's row of the scoreboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContenderResult {
    /// The contender's name.
    pub name: String,
    /// Learned sampler, pipeline or preset.
    pub kind: ContenderKind,
    /// Where it came from (preset name, `FILE#PIPELINE`, checkpoint directory).
    pub source: String,
    /// Bradley–Terry rating among the contenders (natural-log odds, mean 0).
    pub rating: Interval,
    /// Verifiable accuracy, when prompts carry answers.
    pub accuracy: Option<Accuracy>,
    /// Mean over prompts of the self-BLEU (0–100) of its generations across seeds (`None` with
    /// fewer than two seeds).
    pub self_bleu: Option<f64>,
    /// Mean over prompts of the embedding entropy (bits) of its generations across seeds.
    pub embedding_entropy: Option<f64>,
    /// Mean generated tokens per generation.
    pub mean_length: f64,
    /// Learned samplers: mean KL(imitated pipeline ‖ learned) in nats over the positions it
    /// generated.
    pub kl_to_imitated: Option<f64>,
    /// Learned samplers: mean probability the learned sampler puts on tokens the imitated
    /// pipeline truncates.
    pub truncated_mass: Option<f64>,
    /// Learned samplers: KL(imitated ‖ base model's raw logits) at the same positions, for scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_kl: Option<f64>,
    /// Learned samplers: the raw logits' mass on the imitated pipeline's truncated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_truncated_mass: Option<f64>,
    /// Learned samplers: the pipeline imitated, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imitated: Option<String>,
    /// Learned samplers: why KL / truncated mass are absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imitation_absent: Option<String>,
}

/// Whether the contender under test won, tied or lost a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The rating-difference interval is above 0.
    Won,
    /// The interval contains 0.
    Tied,
    /// The interval is below 0.
    Lost,
}

impl Outcome {
    /// The outcome of a rating difference: won above 0, lost below, tied otherwise.
    pub fn of(diff: &Interval) -> Self {
        if diff.above_zero() {
            Outcome::Won
        } else if diff.below_zero() {
            Outcome::Lost
        } else {
            Outcome::Tied
        }
    }
}

/// The contender under test (`a`) against another (`b`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The contender under test.
    pub a: String,
    /// The other contender.
    pub b: String,
    /// `rating(a) − rating(b)` with its interval.
    pub rating_diff: Interval,
    /// `accuracy(a) − accuracy(b)` with its interval, when prompts carry answers.
    pub accuracy_diff: Option<Interval>,
    /// From the rating difference's interval.
    pub outcome: Outcome,
}

/// The files of a run, relative to its directory.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReportFiles {
    /// Every contender's generations.
    pub candidates: String,
    /// The candidates with diversity labels.
    #[serde(default)]
    pub diversity: String,
    /// The candidates with diversity and verifiable labels.
    #[serde(default)]
    pub verified: String,
    /// The judge's verdicts.
    #[serde(default)]
    pub judgements: String,
    /// Learned samplers' KL / truncated mass.
    #[serde(default)]
    pub imitation: String,
    /// The plots drawn (PNG).
    #[serde(default)]
    pub plots: Vec<String>,
}

/// The whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Eval prompts.
    pub prompts: usize,
    /// Seeds per prompt.
    pub seeds: u64,
    /// The judge.
    pub judge: String,
    /// Bootstrap resamples behind every interval.
    #[serde(default)]
    pub bootstrap: usize,
    /// One row per contender, the one under test first.
    pub contenders: Vec<ContenderResult>,
    /// The first contender against each other one.
    pub comparisons: Vec<Comparison>,
    /// One sentence from the numbers ([`EvalReport::verdict`]).
    pub verdict: String,
    /// What else the reader should know (undefined values, unidentified ratings, …).
    #[serde(default)]
    pub notes: Vec<String>,
    /// The run's files.
    pub files: ReportFiles,
}

/// A signed number with `decimals` decimals (`+0.12`, `−0.30`).
fn signed(x: f64, decimals: usize) -> String {
    // a value that rounds to zero is written +0.00, not −0.00
    let x = if x.abs() < 0.5 * 10f64.powi(-(decimals as i32)) {
        0.0
    } else {
        x
    };
    let s = format!("{:+.*}", decimals, x);
    s.replacen('-', "−", 1)
}

/// A plain number with `decimals` decimals, `—` for none.
fn plain(x: Option<f64>, decimals: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        Some(v) => v.to_string(),
        None => "—".into(),
    }
}

/// `value [lo, hi]`.
fn with_interval(i: &Interval, decimals: usize) -> String {
    format!(
        "{} [{}, {}]",
        signed(i.value, decimals),
        signed(i.lo, decimals),
        signed(i.hi, decimals)
    )
}

/// A fraction as a percentage with its interval: `40.0 % [20.0, 60.0]`.
fn percent_interval(value: f64, lo: f64, hi: f64) -> String {
    format!(
        "{:.1} % [{:.1}, {:.1}]",
        100.0 * value,
        100.0 * lo,
        100.0 * hi
    )
}

impl EvalReport {
    /// The contender under test (the first).
    pub fn under_test(&self) -> Option<&ContenderResult> {
        self.contenders.first()
    }

    /// The comparison of the contender under test with the best other contender by rating.
    pub fn against_best_other(&self) -> Option<&Comparison> {
        let best = self
            .contenders
            .iter()
            .skip(1)
            .max_by(|x, y| x.rating.value.total_cmp(&y.rating.value))?;
        self.comparisons.iter().find(|c| c.b == best.name)
    }

    /// One sentence from the numbers: the outcome of the contender under test against the best
    /// other contender by rating, the rating difference and its 95 % interval, and the accuracy
    /// difference when prompts carry answers.
    pub fn verdict(&self) -> String {
        let (Some(a), Some(c)) = (self.under_test(), self.against_best_other()) else {
            return "No comparison: fewer than two contenders.".into();
        };
        let how = match c.outcome {
            Outcome::Won => format!("`{}` won against `{}`", a.name, c.b),
            Outcome::Lost => format!("`{}` lost to `{}`", a.name, c.b),
            Outcome::Tied => format!("`{}` tied with `{}`", a.name, c.b),
        };
        let zero = match c.outcome {
            Outcome::Tied => ", which includes 0",
            _ => "",
        };
        let mut s = format!(
            "{how} (the best other contender by rating) on {} held-out prompts × {} seeds: \
             Bradley–Terry rating difference {} (95 % CI {} to {}{zero})",
            self.prompts,
            self.seeds,
            signed(c.rating_diff.value, 2),
            signed(c.rating_diff.lo, 2),
            signed(c.rating_diff.hi, 2),
        );
        let b = self.contenders.iter().find(|x| x.name == c.b);
        if let (Some(d), Some(acc_a), Some(acc_b)) =
            (c.accuracy_diff, a.accuracy, b.and_then(|b| b.accuracy))
        {
            s.push_str(&format!(
                "; accuracy {:.1} % vs {:.1} % on {} prompt{} with answers (difference {} points, \
                 95 % CI {} to {})",
                100.0 * acc_a.value,
                100.0 * acc_b.value,
                acc_a.n,
                if acc_a.n == 1 { "" } else { "s" },
                signed(100.0 * d.value, 1),
                signed(100.0 * d.lo, 1),
                signed(100.0 * d.hi, 1),
            ));
        }
        s.push('.');
        s
    }

    /// The report as Markdown: the contender × metric table, the comparisons, the verdict, the
    /// notes and the files.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "# Evaluation: {} prompts × {} seeds\n\nJudge: {}. Intervals: 95 % percentile \
             bootstrap over prompts ({} resamples). Metrics: docs/evaluation.md.\n\n",
            self.prompts, self.seeds, self.judge, self.bootstrap
        );
        s.push_str(
            "| contender | kind | rating [95 % CI] | accuracy [95 % CI] | self-BLEU | \
             embedding entropy (bits) | mean length (tokens) | KL to imitated (nats) | \
             truncated mass |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for c in &self.contenders {
            let acc = c
                .accuracy
                .map(|a| format!("{} (n {})", percent_interval(a.value, a.lo, a.hi), a.n))
                .unwrap_or_else(|| "—".into());
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                c.name,
                c.kind.as_str(),
                with_interval(&c.rating, 2),
                acc,
                plain(c.self_bleu, 1),
                plain(c.embedding_entropy, 2),
                plain(Some(c.mean_length), 1),
                plain(c.kl_to_imitated, 4),
                c.truncated_mass
                    .map(|m| format!("{:.2} %", 100.0 * m))
                    .unwrap_or_else(|| "—".into()),
            ));
        }
        if !self.comparisons.is_empty() {
            s.push_str(
                "\n| comparison | rating difference [95 % CI] | accuracy difference [95 % CI] | \
                 outcome |\n|---|---|---|---|\n",
            );
            for c in &self.comparisons {
                let acc = c
                    .accuracy_diff
                    .map(|d| {
                        format!(
                            "{} [{}, {}] points",
                            signed(100.0 * d.value, 1),
                            signed(100.0 * d.lo, 1),
                            signed(100.0 * d.hi, 1)
                        )
                    })
                    .unwrap_or_else(|| "—".into());
                let outcome = match c.outcome {
                    Outcome::Won => "won",
                    Outcome::Tied => "tied",
                    Outcome::Lost => "lost",
                };
                s.push_str(&format!(
                    "| {} vs {} | {} | {acc} | {outcome} |\n",
                    c.a,
                    c.b,
                    with_interval(&c.rating_diff, 2)
                ));
            }
        }
        s.push_str(&format!("\n**Verdict:** {}\n", self.verdict));
        let mut notes = self.notes.clone();
        for c in &self.contenders {
            match (&c.imitated, &c.imitation_absent) {
                (Some(p), _) => {
                    let raw = match (c.identity_kl, c.identity_truncated_mass) {
                        (Some(kl), Some(m)) => format!(
                            " (the base model's raw logits there: KL {kl:.4} nats, truncated \
                             mass {:.2} %)",
                            100.0 * m
                        ),
                        _ => String::new(),
                    };
                    notes.push(format!(
                        "`{}`: KL and truncated mass are against {p}{raw}.",
                        c.name
                    ))
                }
                (None, Some(why)) => {
                    notes.push(format!("`{}`: KL / truncated mass absent: {why}.", c.name))
                }
                _ => {}
            }
        }
        if !notes.is_empty() {
            s.push_str("\nNotes:\n");
            for n in &notes {
                s.push_str(&format!("- {n}\n"));
            }
        }
        s.push_str(&format!(
            "\nFiles: {}",
            [
                &self.files.candidates,
                &self.files.diversity,
                &self.files.verified,
                &self.files.judgements,
                &self.files.imitation,
            ]
            .into_iter()
            .chain(&self.files.plots)
            .filter(|f| !f.is_empty())
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
        ));
        s.push('\n');
        s
    }

    /// Writes `report.json` and `report.md` into `dir`, atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| {
            EvalError::bad_parameter("report", "(the report)", format!("not serialisable: {e}"))
        })?;
        write_atomic(&dir.join(REPORT_JSON), format!("{json}\n").as_bytes())?;
        write_atomic(&dir.join(REPORT_MD), self.to_markdown().as_bytes())?;
        Ok(())
    }

    /// Reads a `report.json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(EvalError::io(path))?;
        serde_json::from_str(&text).map_err(|e| EvalError::BadLine {
            path: path.to_path_buf(),
            line: e.line(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn interval(value: f64, lo: f64, hi: f64) -> Interval {
        Interval { value, lo, hi }
    }

    pub(crate) fn sample() -> EvalReport {
        let row = |name: &str, kind, r: Interval, acc: f64| ContenderResult {
            name: name.into(),
            kind,
            source: name.into(),
            rating: r,
            accuracy: Some(Accuracy {
                value: acc,
                lo: acc - 0.1,
                hi: acc + 0.1,
                n: 10,
            }),
            self_bleu: Some(31.0),
            embedding_entropy: Some(2.9),
            mean_length: 57.2,
            kl_to_imitated: None,
            truncated_mass: None,
            identity_kl: None,
            identity_truncated_mass: None,
            imitated: None,
            imitation_absent: None,
        };
        let mut learned = row(
            "learned",
            ContenderKind::Learned,
            interval(0.3, 0.1, 0.5),
            0.4,
        );
        learned.kl_to_imitated = Some(0.04);
        learned.truncated_mass = Some(0.01);
        learned.imitated = Some("the pipeline `t07`".into());
        learned.identity_kl = Some(0.19);
        learned.identity_truncated_mass = Some(0.1);
        let contenders = vec![
            learned,
            row(
                "balanced",
                ContenderKind::Preset,
                interval(-0.1, -0.3, 0.1),
                0.35,
            ),
            row(
                "t10",
                ContenderKind::Pipeline,
                interval(-0.2, -0.4, 0.0),
                0.3,
            ),
        ];
        let comparisons = vec![
            Comparison {
                a: "learned".into(),
                b: "balanced".into(),
                rating_diff: interval(0.4, 0.1, 0.7),
                accuracy_diff: Some(interval(0.05, -0.03, 0.12)),
                outcome: Outcome::Won,
            },
            Comparison {
                a: "learned".into(),
                b: "t10".into(),
                rating_diff: interval(0.5, 0.2, 0.8),
                accuracy_diff: Some(interval(0.1, 0.0, 0.2)),
                outcome: Outcome::Won,
            },
        ];
        let mut r = EvalReport {
            prompts: 24,
            seeds: 2,
            judge: "model.gguf".into(),
            bootstrap: 1000,
            contenders,
            comparisons,
            verdict: String::new(),
            notes: vec![],
            files: ReportFiles {
                candidates: "candidates.jsonl".into(),
                ..Default::default()
            },
        };
        r.verdict = r.verdict();
        r
    }

    #[test]
    fn outcomes_follow_the_interval() {
        assert_eq!(Outcome::of(&interval(0.2, 0.01, 0.4)), Outcome::Won);
        assert_eq!(Outcome::of(&interval(-0.2, -0.4, -0.01)), Outcome::Lost);
        assert_eq!(Outcome::of(&interval(0.2, 0.0, 0.4)), Outcome::Tied);
        assert_eq!(Outcome::of(&interval(0.0, -0.1, 0.1)), Outcome::Tied);
    }

    #[test]
    fn the_verdict_names_the_best_other_contender_and_the_numbers() {
        let r = sample();
        let v = r.verdict();
        assert!(v.starts_with("`learned` won against `balanced`"), "{v}");
        assert!(v.contains("+0.40 (95 % CI +0.10 to +0.70)"), "{v}");
        assert!(v.contains("24 held-out prompts × 2 seeds"), "{v}");
        assert!(v.contains("accuracy 40.0 % vs 35.0 % on 10 prompts"), "{v}");
        assert!(v.contains("+5.0 points, 95 % CI −3.0 to +12.0"), "{v}");
        let mut tied = r.clone();
        tied.comparisons[0].rating_diff = interval(0.1, -0.2, 0.4);
        tied.comparisons[0].outcome = Outcome::Tied;
        tied.comparisons[0].accuracy_diff = None;
        let v = tied.verdict();
        assert!(v.starts_with("`learned` tied with `balanced`"), "{v}");
        assert!(
            v.contains("which includes 0") && !v.contains("accuracy"),
            "{v}"
        );
        let mut lost = r;
        lost.contenders[2].rating.value = 0.0; // t10 now the best other
        lost.comparisons[1].outcome = Outcome::Lost;
        lost.comparisons[1].rating_diff = interval(-0.3, -0.5, -0.1);
        let v = lost.verdict();
        assert!(v.starts_with("`learned` lost to `t10`"), "{v}");
        assert!(v.contains("−0.30 (95 % CI −0.50 to −0.10)"), "{v}");
    }

    #[test]
    fn markdown_has_one_row_per_contender_and_the_json_round_trips() {
        let r = sample();
        let md = r.to_markdown();
        assert!(md.contains("| learned | learned | +0.30 [+0.10, +0.50] | 40.0 % [30.0, 50.0] (n 10) | 31.0 | 2.90 | 57.2 | 0.0400 | 1.00 % |"), "{md}");
        assert!(
            md.contains("| learned vs t10 | +0.50 [+0.20, +0.80] |"),
            "{md}"
        );
        assert!(md.contains("**Verdict:** `learned` won"), "{md}");
        assert!(
            md.contains("KL and truncated mass are against the pipeline `t07`"),
            "{md}"
        );
        assert!(
            md.contains("raw logits there: KL 0.1900 nats, truncated mass 10.00 %"),
            "{md}"
        );
        let dir = tempfile::tempdir().unwrap();
        r.write(dir.path()).unwrap();
        // (serde_json reads a float back to within an ulp, so the text is compared)
        let back = EvalReport::read(&dir.path().join(REPORT_JSON)).unwrap();
        assert_eq!(back.to_markdown(), md);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(REPORT_MD)).unwrap(),
            md
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(REPORT_JSON)).unwrap())
                .unwrap();
        assert_eq!(v["contenders"][0]["kind"], "learned");
        assert_eq!(v["comparisons"][0]["outcome"], "won");
        assert_eq!(
            v["contenders"][1]["kl_to_imitated"],
            serde_json::Value::Null
        );
        assert_eq!(v["contenders"][0]["accuracy"]["n"], 10);
    }
}
