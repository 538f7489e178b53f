//! `bench-generate`'s optimal-sampling rows: the overhead of mixing two models per step
//! (α solve, q*, the θ pipeline on q*) relative to the two models' forwards alone, measured in
//! the same run on the same token sequences.
//!
//! Two instances of the model serve as θ and teacher. The optimal run generates a fixed number of
//! tokens per sequence (EOS banned); the reference then replays exactly those sequences through
//! both models with the same batching (prompts, then one token per sequence per step) and no
//! mixing. Overhead = `T_optimal / T_reference − 1`; the target is ≤ 10 %.

use std::time::Instant;

use adasamp_engine::optimal::{generate_optimal, OptimalOptions, OptimalRequest};
use adasamp_engine::{BackendChoice, Feed, GenerationRequest, LanguageModel, LoadOptions};
use adasamp_sampling::optimal::{AlphaMethod, MixOptions};
use adasamp_sampling::{Pipeline, PipelineSpec, StageSpec};
use anyhow::Result;

/// One measured configuration.
#[derive(Debug, Clone, Copy)]
pub struct OverheadRow {
    /// Sequences decoded together.
    pub batch: usize,
    /// Generated tokens over all sequences.
    pub tokens: usize,
    /// Seconds of the optimal-sampling run.
    pub optimal_s: f64,
    /// Seconds of the two models' forwards alone over the same sequences.
    pub forwards_s: f64,
}

impl OverheadRow {
    /// `T_optimal / T_reference − 1`.
    pub fn overhead(&self) -> f64 {
        self.optimal_s / self.forwards_s.max(1e-12) - 1.0
    }
}

/// Replays every sequence (prompt, then its tokens but the last, one per step, all sequences in
/// one feed per step) through `model`; returns nothing, only the time matters.
fn replay(model: &mut dyn LanguageModel, seqs: &[(Vec<u32>, Vec<u32>)]) -> Result<()> {
    let ids = seqs
        .iter()
        .map(|_| model.new_sequence())
        .collect::<adasamp_engine::Result<Vec<_>>>()?;
    let steps = seqs.iter().map(|s| s.1.len()).max().unwrap_or(0);
    let result = (|| -> Result<()> {
        for k in 0..steps {
            let feeds: Vec<Feed<'_>> = seqs
                .iter()
                .zip(&ids)
                .filter(|(s, _)| k < s.1.len())
                .map(|((prompt, gen), &id)| {
                    if k == 0 {
                        Feed::tokens(id, prompt)
                    } else {
                        Feed::tokens(id, &gen[k - 1..k])
                    }
                })
                .collect();
            model.forward(&feeds)?;
        }
        Ok(())
    })();
    for id in ids {
        model.free_sequence(id);
    }
    result
}

/// Measures the optimal-sampling overhead with `method` for each batch size: θ and the teacher
/// are two instances of the model at `model_path` on `backend`; `pipeline` (EOS banned) is θ's.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    model_path: Option<&std::path::Path>,
    backend: BackendChoice,
    opts: LoadOptions,
    batches: &[usize],
    new_tokens: usize,
    prompts: &[&str],
    pipeline: &Pipeline,
    method: AlphaMethod,
) -> Result<(String, Vec<OverheadRow>)> {
    let mut log = |m: &str| eprintln!("{m}");
    let mut theta = adasamp_engine::load(model_path, backend, opts, &mut log)?;
    let mut teacher = adasamp_engine::load(model_path, backend, opts, &mut log)?;
    let name = theta.model.info().backend.to_string();
    let options = OptimalOptions {
        mix: MixOptions {
            method,
            ..MixOptions::default()
        },
        force_teacher_first: false,
    };
    let mut spec: PipelineSpec = pipeline.spec().clone();
    let eos: Vec<(u32, f64)> = theta
        .tokenizer
        .eos_ids()
        .iter()
        .map(|&e| (e, f64::NEG_INFINITY))
        .collect();
    spec.processors.insert(
        0,
        StageSpec::new("logit_bias", &[])
            .with("bias", crate::commands::bench_generate::bias_map(&eos)),
    );
    let pipe = Pipeline::from_spec(spec)?;
    let mut rows = Vec::new();
    for (round, &b) in std::iter::once(&1).chain(batches).enumerate() {
        let reqs = (0..b)
            .map(|i| -> Result<OptimalRequest> {
                let prompt = theta.prompt_tokens(prompts[i % prompts.len()], None, false)?;
                Ok(OptimalRequest {
                    teacher_prompt: prompt.clone(),
                    theta: GenerationRequest {
                        prompt,
                        pipeline: pipe.clone(),
                        seed: i as u64,
                        // The first round is a short warm-up.
                        max_new_tokens: if round == 0 { 4 } else { new_tokens },
                        stop: vec![],
                        logprobs: 0,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let t0 = Instant::now();
        let gens = generate_optimal(
            theta.model.as_mut(),
            teacher.model.as_mut(),
            &theta.tokenizer,
            reqs.clone(),
            &options,
            &mut |_, _| {},
        )?;
        let optimal_s = t0.elapsed().as_secs_f64();
        let seqs: Vec<(Vec<u32>, Vec<u32>)> = reqs
            .iter()
            .zip(&gens)
            .map(|(r, g)| (r.theta.prompt.clone(), g.generation.tokens.clone()))
            .collect();
        let t1 = Instant::now();
        replay(theta.model.as_mut(), &seqs)?;
        replay(teacher.model.as_mut(), &seqs)?;
        let forwards_s = t1.elapsed().as_secs_f64();
        if round > 0 {
            rows.push(OverheadRow {
                batch: b,
                tokens: gens.iter().map(|g| g.generation.tokens.len()).sum(),
                optimal_s,
                forwards_s,
            });
        }
    }
    Ok((name, rows))
}
