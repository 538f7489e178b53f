//! Heuristic grids for training-data generation (SPEC 1.4): every temperature followed by one
//! truncation heuristic, in full (396 / 384 pipelines) or filtered (143) form.

use crate::spec::{PipelineFile, PipelineSpec, StageSpec};

/// Model family whose official sampling defaults join the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Llama: top_p 0.9.
    Llama,
    /// Gemma: top_p 0.95 + top_k 64.
    Gemma,
    /// Qwen: top_p 0.8 + top_k 20.
    Qwen,
    /// No family defaults.
    None,
}

impl std::str::FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "llama" => Ok(Self::Llama),
            "gemma" => Ok(Self::Gemma),
            "qwen" => Ok(Self::Qwen),
            "none" => Ok(Self::None),
            o => Err(format!("unknown family `{o}` (llama, gemma, qwen, none)")),
        }
    }
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Gemma => "gemma",
            Self::Qwen => "qwen",
            Self::None => "none",
        }
    }

    /// The family's official truncation stages (after temperature).
    fn official(self) -> Option<Vec<StageSpec>> {
        match self {
            Self::Llama => Some(vec![StageSpec::new("top_p", &[("top_p", 0.9)])]),
            Self::Gemma => Some(vec![
                StageSpec::new("top_p", &[("top_p", 0.95)]),
                StageSpec::new("top_k", &[("top_k", 64.0)]),
            ]),
            Self::Qwen => Some(vec![
                StageSpec::new("top_p", &[("top_p", 0.8)]),
                StageSpec::new("top_k", &[("top_k", 20.0)]),
            ]),
            Self::None => None,
        }
    }
}

/// The grid temperatures `round(1.2^x · 10) / 10` for `x ∈ [−6, 5]`.
pub fn temperatures() -> Vec<f64> {
    (-6..=5)
        .map(|x| (1.2f64.powi(x) * 10.0).round() / 10.0)
        .collect()
}

/// `(stage, param, values)` of the full grid's single-parameter heuristics.
const FULL: &[(&str, &str, &[f64])] = &[
    ("top_p", "top_p", &[0.5, 0.8, 0.9, 0.95, 0.98]),
    ("top_k", "top_k", &[8.0, 16.0, 32.0, 64.0, 128.0]),
    ("min_p", "min_p", &[0.01, 0.02, 0.05, 0.1]),
    ("eta", "epsilon", &[1e-3, 8e-4, 5e-4, 2e-4, 1e-4]),
    ("epsilon", "epsilon", &[4e-3, 2e-3, 1e-3, 8e-4, 5e-4, 2e-4]),
    ("typical", "mass", &[0.2, 0.5, 0.8, 0.9, 0.92, 0.95]),
];

const FILTERED: &[(&str, &str, &[f64])] = &[
    ("top_p", "top_p", &[0.8, 0.9, 0.95]),
    ("top_k", "top_k", &[16.0, 64.0, 256.0]),
    ("epsilon", "epsilon", &[4e-3, 2e-3, 1e-3]),
];

fn pipeline(t: f64, suffix: Option<String>, rest: Vec<StageSpec>) -> PipelineSpec {
    let mut processors = vec![StageSpec::new("temperature", &[("temperature", t)])];
    processors.extend(rest);
    let name = match suffix {
        Some(s) => format!("temp{t}_{s}"),
        None => format!("temp{t}"),
    };
    PipelineSpec {
        name,
        weight: 1.0,
        processors,
    }
}

fn variants(t: f64, family: Family, table: &[(&str, &str, &[f64])]) -> Vec<PipelineSpec> {
    let mut out = vec![pipeline(t, None, vec![])];
    if let Some(official) = family.official() {
        out.push(pipeline(
            t,
            Some(format!("{}_default", family.name())),
            official,
        ));
    }
    for (stage, param, values) in table {
        for &v in *values {
            out.push(pipeline(
                t,
                Some(format!("{stage}{v}")),
                vec![StageSpec::new(stage, &[(param, v)])],
            ));
        }
    }
    out
}

/// The full grid: 33 pipelines per temperature with family defaults (396), 32 without (384).
pub fn full_grid(family: Family) -> PipelineFile {
    PipelineFile {
        pipelines: temperatures()
            .into_iter()
            .flat_map(|t| variants(t, family, FULL))
            .collect(),
    }
}

/// The filtered grid: 9 temperatures 0.3–1.4 × {alone, official, top_p, top_k, epsilon}, plus
/// min_p {.01, .02, .05, .1} over the 11 temperatures 0.3–2.1 (143 with family defaults).
pub fn filtered_grid(family: Family) -> PipelineFile {
    let temps = temperatures();
    let mut pipelines: Vec<PipelineSpec> = temps
        .iter()
        .filter(|&&t| t <= 1.4)
        .flat_map(|&t| variants(t, family, FILTERED))
        .collect();
    for &t in temps.iter().filter(|&&t| t <= 2.1) {
        for v in [0.01, 0.02, 0.05, 0.1] {
            pipelines.push(pipeline(
                t,
                Some(format!("min_p{v}")),
                vec![StageSpec::new("min_p", &[("min_p", v)])],
            ));
        }
    }
    PipelineFile { pipelines }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::PipelineSet;

    #[test]
    fn temperatures_are_the_spec_list() {
        assert_eq!(
            temperatures(),
            vec![0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.4, 1.7, 2.1, 2.5]
        );
    }

    #[test]
    fn grid_counts() {
        for f in [Family::Llama, Family::Gemma, Family::Qwen] {
            assert_eq!(full_grid(f).pipelines.len(), 396);
            assert_eq!(filtered_grid(f).pipelines.len(), 143);
        }
        assert_eq!(full_grid(Family::None).pipelines.len(), 384);
        assert_eq!(filtered_grid(Family::None).pipelines.len(), 134);
    }

    #[test]
    fn grids_build_and_round_trip() {
        for g in [full_grid(Family::Gemma), filtered_grid(Family::Qwen)] {
            let yaml = g.to_yaml();
            let set = PipelineSet::from_yaml(&yaml, None).unwrap();
            assert_eq!(set.to_file(), g);
        }
    }
}
