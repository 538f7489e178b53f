//! Command-line options of optimal sampling (`generate --teacher`): the teacher model, its
//! prompt, the α method and its bracket, the teacher's support, forced steps and the per-step
//! diagnostics file.

use std::io::Write;
use std::path::PathBuf;

use adasamp_engine::optimal::{OptimalGeneration, OptimalOptions};
use adasamp_engine::LoadedModel;
use adasamp_sampling::optimal::{AlphaMethod, MixOptions};
use anyhow::{bail, Context, Result};
use clap::Args;

/// Options of optimal sampling with a teacher model.
#[derive(Debug, Args, Clone)]
pub struct TeacherArgs {
    /// Teacher model (a .gguf file or a Hugging Face directory) with the same vocabulary:
    /// generate from q* ∝ π_θ^(1−α)·π_t^α, θ being --model.
    #[arg(long, value_name = "PATH")]
    pub teacher: Option<PathBuf>,
    /// How α (the teacher's weight) is chosen per step: fixed, entropy, kl_symmetry,
    /// reverse_kl_symmetry or ess_balance.
    #[arg(long, default_value = "kl_symmetry", requires = "teacher")]
    pub alpha_method: String,
    /// α of --alpha-method fixed.
    #[arg(long, default_value_t = 0.5, requires = "teacher")]
    pub alpha: f64,
    /// Lower end of the bracket α is clamped to.
    #[arg(long, default_value_t = 0.0, requires = "teacher")]
    pub alpha_min: f64,
    /// Upper end of the bracket α is clamped to.
    #[arg(long, default_value_t = 1.0, requires = "teacher")]
    pub alpha_max: f64,
    /// The teacher's system prompt (default: θ's).
    #[arg(long, value_name = "TEXT", requires = "teacher")]
    pub teacher_system: Option<String>,
    /// The teacher's whole prompt text, used as-is (no chat template): `{prompt}` is replaced
    /// by the user prompt.
    #[arg(
        long,
        value_name = "TEXT",
        conflicts_with = "teacher_system",
        requires = "teacher"
    )]
    pub teacher_prompt_template: Option<String>,
    /// Keep only the teacher's K most likely tokens in q*.
    #[arg(long, value_name = "K", requires = "teacher")]
    pub teacher_top_k: Option<usize>,
    /// Keep only the teacher's most likely tokens holding probability P in q* (the token that
    /// crosses P kept).
    #[arg(long, value_name = "P", requires = "teacher")]
    pub teacher_top_p: Option<f64>,
    /// Steps whose teacher arg-max is a special token (EOS, …) use the teacher alone (α = 1).
    #[arg(long, requires = "teacher")]
    pub force_teacher_special: bool,
    /// The first generated token uses the teacher alone (α = 1).
    #[arg(long, requires = "teacher")]
    pub force_teacher_first: bool,
    /// Write the per-step diagnostics (α, how it was found, ESS_θ, ESS_t, their ratio,
    /// KL(q‖π_θ), KL(q‖π_t)) here, one JSON line per generated token.
    #[arg(long, value_name = "FILE.jsonl", requires = "teacher")]
    pub diagnostics: Option<PathBuf>,
}

impl TeacherArgs {
    /// Checks the mixing flags (before any model is loaded).
    pub fn validate(&self) -> Result<()> {
        self.mix(Vec::new())?.validate()?;
        Ok(())
    }

    fn mix(&self, teacher_special: Vec<u32>) -> Result<MixOptions> {
        Ok(MixOptions {
            method: AlphaMethod::parse(&self.alpha_method)?,
            alpha: self.alpha,
            alpha_min: self.alpha_min,
            alpha_max: self.alpha_max,
            teacher_top_k: self.teacher_top_k,
            teacher_top_p: self.teacher_top_p,
            teacher_special,
            ..MixOptions::default()
        })
    }

    /// The mixing options (validated), with θ's tokenizer's special tokens when
    /// --force-teacher-special.
    pub fn options(&self, theta: &LoadedModel) -> Result<OptimalOptions> {
        let mut special = Vec::new();
        if self.force_teacher_special {
            let tok = &theta.tokenizer;
            special = (0..tok.vocab_size() as u32)
                .filter(|&i| tok.is_special(i))
                .collect();
            special.extend(tok.eos_ids());
            special.sort_unstable();
            special.dedup();
        }
        let mix = self.mix(special)?;
        mix.validate()?;
        Ok(OptimalOptions {
            mix,
            force_teacher_first: self.force_teacher_first,
        })
    }

    /// The teacher's prompt tokens for a user prompt (`system`: θ's system prompt, used when no
    /// teacher system prompt is given).
    pub fn prompt(
        &self,
        teacher: &LoadedModel,
        user: &str,
        system: Option<&str>,
        raw: bool,
    ) -> Result<Vec<u32>> {
        if let Some(t) = &self.teacher_prompt_template {
            if !t.contains("{prompt}") {
                bail!("--teacher-prompt-template must contain {{prompt}} (got {t:?})");
            }
            let text = t.replace("{prompt}", user);
            return Ok(teacher.prompt_tokens(&text, None, true)?);
        }
        let sys = self.teacher_system.as_deref().or(system);
        Ok(teacher.prompt_tokens(user, sys, raw)?)
    }
}

/// Appends the per-step diagnostics of generation `id` to `sink`, one JSON line per step.
pub fn write_diagnostics(sink: &mut dyn Write, id: &str, g: &OptimalGeneration) -> Result<()> {
    for (step, s) in g.steps.iter().enumerate() {
        let mut v = serde_json::to_value(s)?;
        if let Some(m) = v.as_object_mut() {
            m.insert("id".into(), id.into());
            m.insert("step".into(), step.into());
        }
        let mut line = serde_json::to_string(&v)?;
        line.push('\n');
        sink.write_all(line.as_bytes())
            .context("writing the diagnostics")?;
    }
    sink.flush().context("writing the diagnostics")?;
    Ok(())
}
