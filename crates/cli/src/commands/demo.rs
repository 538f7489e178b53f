//! `adasamp demo`: the whole loop — prompts, candidates, verify, labels, score, train, eval —
//! in one run directory (see `adasamp_eval::demo`); prints the scoreboard, the verdict, the
//! stage timings and the run directory's files.

use std::path::PathBuf;

use adasamp_eval::demo::{self, DemoOptions, Size, Source};
use anyhow::Result;
use clap::Args;

/// Options of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// A few minutes: 6 prompts, 4 pipelines, 16 tokens (CI).
    #[arg(long, conflicts_with = "full")]
    pub fast: bool,
    /// Larger: 100 prompts, 12 pipelines × 4 seeds, 256 tokens (a GPU or --endpoint).
    #[arg(long)]
    pub full: bool,
    /// Run directory (a rerun of the same directory skips the stages already complete).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Base model (default: the default model); training and evaluation always run it here.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// An OpenAI-compatible server serving the same model, for the candidates and the eval's
    /// heuristic generations (repeatable: taken in turn) and the judge (the first). The grid's
    /// pipelines must be installed on an `adasamp serve` (`adasamp grid --family llama
    /// --filtered` into its --samplers directory).
    #[arg(long = "endpoint", value_name = "URL")]
    pub endpoints: Vec<String>,
    /// Endpoints: send `Authorization: Bearer KEY`.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
}

/// Runs `demo`.
pub fn run(a: &DemoArgs) -> Result<()> {
    let size = if a.fast {
        Size::Fast
    } else if a.full {
        Size::Full
    } else {
        Size::Default
    };
    let opts = DemoOptions {
        size,
        run_dir: a
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("demo-{}", size.name()))),
        source: Source {
            model: a.model.clone(),
            endpoints: a.endpoints.clone(),
            api_key: a.api_key.clone(),
        },
    };
    let mut report = demo::run(&opts, &mut |m: &str| eprintln!("{m}"))?;
    // The eval's two plots, as `adasamp eval` draws them (plotters lives in the CLI).
    let eval_dir = demo::Layout::new(&report.run_dir).eval();
    crate::commands::eval::finish(&mut report.eval, &eval_dir)?;
    for png in &report.eval.files.plots {
        let name = format!("eval/{png}");
        if !report.files.contains(&name) {
            report.files.push(name);
        }
    }
    report.files.sort();
    println!("{}", report.eval.to_markdown());
    println!("{}\n", report.eval.verdict());
    println!(
        "Best single heuristic: {} — {}.\n",
        report.best_heuristic.pipeline, report.best_heuristic.rule
    );
    println!("{}", report.timings_markdown());
    println!("Files in {}:", report.run_dir.display());
    for f in &report.files {
        println!("  {f}");
    }
    Ok(())
}
