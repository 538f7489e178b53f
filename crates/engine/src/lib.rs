//! adasamp's decoding engine: base language models behind one trait, with the default model,
//! tokenizers from GGUF metadata or `tokenizer.json`, chat templates, KV caches, the per-sequence
//! decoding state and the step-wise scheduler every decoding loop runs on.
//! All sampling goes through `adasamp-sampling`.

pub mod candle_backend;
pub mod chat;
pub mod device;
pub mod embedding_table;
pub mod error;
pub mod fetch;
pub mod files;
pub mod generate;
pub mod gguf;
#[cfg(feature = "llama-cpp")]
pub mod llama_cpp;
pub mod load;
pub mod model;
pub mod optimal;
pub mod random_model;
pub mod record;
pub mod scheduler;
pub mod sequence;
pub mod soft;
pub mod speculative;
pub mod stop;
pub mod stream;
pub mod tokenizer;

pub use device::ComputeDevice;
pub use error::{EngineError, Result};
pub use generate::{generate, generate_with, lane_order};
pub use load::{
    chat_prompt_text, chat_prompt_tokens, load, BackendChoice, LoadOptions, LoadedModel,
};
pub use model::{
    Backend, Capabilities, Capability, Feed, ForwardOutput, HiddenState, Input, LanguageModel,
    Logits, ModelInfo, SeqId, DEFAULT_MAX_SEQUENCES,
};
pub use scheduler::{
    Finished, Observation, RequestId, Scheduler, SchedulerOptions, StepEnd, StepEvent, StepReport,
    Timing,
};
pub use sequence::{FinishReason, Generation, GenerationRequest, Sequence, Usage};
