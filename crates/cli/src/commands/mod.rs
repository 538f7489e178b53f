//! One module per subcommand: its clap `Args` and its `run`.

pub mod analyze;
pub mod apply;
pub mod bench_generate;
pub mod bench_index;
pub mod bench_sampler;
pub mod bench_sampling;
pub mod bench_serve;
pub mod bench_train;
pub mod candidates;
pub mod demo;
pub mod eval;
pub mod example;
pub mod generate;
pub mod grid;
pub mod index;
pub mod label;
pub mod logits;
pub mod model;
pub mod prompts;
pub mod sample;
pub mod sampler;
pub mod score;
pub mod serve;
pub mod stages;
pub mod train;
pub mod verify;
