//! Quality labels (SPEC 4): per (prompt, seed), which pipeline's generation is best.
//!
//! * With a pairwise **judge** ([`tournament::label_quality`]): a Swiss tournament
//!   ([`swiss`]) among the group's generations; each pair is judged in both orders with a fixed
//!   prompt ([`template`]) by a judge asked for one token with its top 15 log-probabilities
//!   ([`judge`]: a local model on the engine, [`local`], or an OpenAI-compatible endpoint,
//!   [`endpoint`]); the letters' probabilities give the soft outcome ([`outcome`]); Bradley–Terry
//!   ratings are fitted on the soft outcomes ([`bradley_terry`]). Labels: [`labels::QUALITY`]
//!   (rating, mean-centred per group) and [`labels::QUALITY_SCORE`] (accumulated score).
//! * With a **reward endpoint** ([`reward::label_rewards`], contract in [`scorer`]): one scalar
//!   per generation, [`labels::REWARD`]; a failed call leaves it missing.
//!
//! Both write each (prompt, seed) group's records together and resume per group ([`groups`]).
//!
//! [`labels::QUALITY`]: crate::labels::QUALITY
//! [`labels::QUALITY_SCORE`]: crate::labels::QUALITY_SCORE
//! [`labels::REWARD`]: crate::labels::REWARD

pub mod bradley_terry;
pub mod endpoint;
#[cfg(test)]
mod fake_server;
pub mod groups;
pub mod http;
pub mod judge;
pub mod local;
pub mod outcome;
pub mod reward;
pub mod scorer;
pub mod swiss;
pub mod template;
pub mod tournament;

pub use endpoint::EndpointJudge;
pub use http::HttpOptions;
pub use judge::{Comparison, Judge};
pub use local::LocalJudge;
pub use reward::label_rewards;
pub use scorer::Scorer;
pub use tournament::{label_quality, TournamentOptions};
