//! Load generation against an OpenAI-compatible server (`adasamp bench-serve`): concurrent
//! streamed requests, per-token timing, and the throughput/latency figures of each load level.

pub mod client;
pub mod run;
pub mod sse;
pub mod stats;
pub mod target;
pub mod wire;
