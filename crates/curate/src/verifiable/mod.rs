//! Verifiable rewards (SPEC 4): a generation scores 1 when it is correct for its prompt's
//! `dataset` and `ground_truth`, else 0.
//!
//! * `gsm8k` ([`gsm8k`]): the last number in the text, compared numerically;
//! * `math` ([`math`]): the last `\boxed{…}` (or a fallback), normalised, then equivalent
//!   numbers / fractions / simple rational expressions;
//! * `ifeval` ([`ifeval`]): every instruction of the IFEval record followed (strict mode).
//!
//! A ground truth is read once into a [`Task`] (so a malformed one is an error before any
//! generation is scored), then [`Task::score`] is a pure function of the generation.
//! [`label`] is the `label verify` stage over a JSONL file of candidates.

pub mod gsm8k;
pub mod ifeval;
pub mod label;
pub mod language;
pub mod math;
pub mod rational;

use serde_json::Value;

/// What is wrong with a verifiable task's `dataset` or `ground_truth`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The dataset is not one of [`DATASETS`].
    #[error("unknown dataset {0:?} (known: gsm8k, math, ifeval)")]
    UnknownDataset(String),
    /// The ground truth does not fit its dataset.
    #[error("{0}")]
    BadGroundTruth(String),
}

/// The dataset names a prompt's `dataset` field may take.
pub const DATASETS: &[&str] = &["gsm8k", "math", "ifeval"];

/// A verifiable task: its dataset and its ground truth, read and validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// GSM8K-style: the expected number.
    Gsm8k(rational::Rational),
    /// MATH-style: the expected answer (LaTeX).
    Math(String),
    /// IFEval-style: the instructions to follow.
    IfEval(ifeval::Instructions),
}

impl Task {
    /// Reads `ground_truth` for `dataset`.
    pub fn parse(dataset: &str, ground_truth: &Value) -> Result<Self, VerifyError> {
        match dataset {
            "gsm8k" => gsm8k::parse_ground_truth(ground_truth).map(Task::Gsm8k),
            "math" => math::parse_ground_truth(ground_truth).map(Task::Math),
            "ifeval" => ifeval::parse_ground_truth(ground_truth).map(Task::IfEval),
            other => Err(VerifyError::UnknownDataset(other.to_string())),
        }
    }

    /// 1 when `generation` is correct for this task, else 0.
    pub fn score(&self, generation: &str) -> u8 {
        let correct = match self {
            Task::Gsm8k(expected) => gsm8k::is_correct(generation, *expected),
            Task::Math(expected) => math::is_correct(generation, expected),
            Task::IfEval(instructions) => instructions.all_followed(generation),
        };
        u8::from(correct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Every ground truth of the shipped IFEval-style prompts, to run each instruction.
    fn all_instructions() -> Vec<ifeval::Instructions> {
        crate::prompt_sets::ifeval::load()
            .unwrap()
            .iter()
            .map(|p| ifeval::parse_ground_truth(p.ground_truth.as_ref().unwrap()).unwrap())
            .collect()
    }

    fn with_separators(n: i64) -> String {
        let digits = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 {
            format!("-{out}")
        } else {
            out
        }
    }

    proptest! {
        #[test]
        fn checks_never_panic(text in prop_oneof![
            "\\PC{0,120}",
            "[a-z0-9 $*<>{}()\\\\\\[\\],.=/\n\"'-]{0,120}",
            "[\\\\boxed{}frac0-9 .,$éあ-]{0,60}",
        ]) {
            let _ = gsm8k::numbers(&text);
            let _ = math::extract_answer(&text);
            let n = math::normalize(&text);
            let _ = math::evaluate(&n);
            let _ = math::equivalent(&text, "1");
            for ins in all_instructions() {
                let _ = ins.all_followed(&text);
            }
            for code in language::SUPPORTED {
                let _ = language::is_language(&text, code);
            }
        }

        #[test]
        fn integers_with_separators_are_read_back(n in any::<i64>()) {
            let text = format!("so the answer is {}.", with_separators(n));
            prop_assert_eq!(gsm8k::last_number(&text), Some(rational::Rational::integer(i128::from(n))));
        }

        #[test]
        fn fractions_equal_their_scaled_and_decimal_forms(a in -999i64..999, b in 1i64..999, k in 1i64..50) {
            let frac = format!("\\frac{{{a}}}{{{b}}}");
            let scaled = format!("{}/{}", a * k, b * k);
            let other = format!("\\frac{{{}}}{{{b}}}", a + 1);
            prop_assert!(math::equivalent(&frac, &scaled), "{} vs {}", frac, scaled);
            prop_assert!(!math::equivalent(&frac, &other), "{} vs {}", frac, other);
            if 1000 % b == 0 {
                // b divides 1000: an exact decimal with three places
                let milli = a * (1000 / b);
                let sign = if milli < 0 { "-" } else { "" };
                let dec = format!("{sign}{}.{:03}", milli.abs() / 1000, milli.abs() % 1000);
                let dfrac = format!("\\dfrac{{{a}}}{{{b}}}");
                prop_assert!(math::equivalent(&dfrac, &dec), "{} vs {}", dfrac, dec);
            }
        }
    }

    #[test]
    fn dispatch_by_dataset() {
        let t = Task::parse("gsm8k", &json!("#### 18")).unwrap();
        assert_eq!(t.score("so 18.0"), 1);
        assert_eq!(t.score("so 17"), 0);
        let t = Task::parse("math", &json!("\\frac{1}{2}")).unwrap();
        assert_eq!(t.score("\\boxed{0.5}"), 1);
        assert_eq!(t.score("\\boxed{0.6}"), 0);
        let t = Task::parse(
            "ifeval",
            &json!({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}),
        )
        .unwrap();
        assert_eq!(t.score("fine"), 1);
        assert_eq!(t.score("a, b"), 0);
        assert_eq!(
            Task::parse("gsm9k", &json!("1")).unwrap_err(),
            VerifyError::UnknownDataset("gsm9k".into())
        );
    }
}
