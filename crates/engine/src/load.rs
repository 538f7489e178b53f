//! Opening a model by path (or the default model) with its tokenizer and chat template, on the
//! backend the format and the requested capabilities call for.

use std::path::{Path, PathBuf};

use crate::candle_backend::{CandleModel, CandleOptions};
use crate::chat::{ChatMessage, ChatTemplate};
use crate::device::ComputeDevice;
use crate::error::{bad_request, EngineError, Result};
use crate::fetch;
use crate::model::{Backend, Capabilities, LanguageModel, DEFAULT_MAX_SEQUENCES};
use crate::tokenizer::TextTokenizer;

/// Which backend to run a model on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// The best backend for the format and the capabilities asked for: GGUF → llama.cpp (when
    /// built in and no candle-only capability is required), safetensors → candle.
    #[default]
    Auto,
    /// Always candle.
    Candle,
    /// Always llama.cpp (GGUF only).
    LlamaCpp,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "candle" => Ok(Self::Candle),
            "llama.cpp" | "llama-cpp" | "llamacpp" => Ok(Self::LlamaCpp),
            o => Err(format!("unknown backend `{o}` (auto, candle, llama.cpp)")),
        }
    }
}

/// How to load a model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Cap on the sequence length (default: the model's context).
    pub max_seq_len: Option<usize>,
    /// Re-quantize Q4_1/Q5_x weights to Q8_0 for speed: candle in memory (see
    /// `candle_backend::gguf`), llama.cpp through a cached Q8_0 copy of the file (see
    /// `llama_cpp::requantized_q8`).
    pub requant_q8: bool,
    /// Capabilities the caller needs; `Auto` picks candle when llama.cpp lacks one.
    pub needs: Capabilities,
    /// Sequences live at once (default [`DEFAULT_MAX_SEQUENCES`]; llama.cpp sizes its KV
    /// cache for them at load).
    pub max_sequences: Option<usize>,
    /// CPU threads (default: all cores).
    pub threads: Option<usize>,
    /// llama.cpp's flash attention (faster, moves the logits slightly: see
    /// `LlamaCppOptions::flash_attn`); a model that runs on candle refuses it.
    pub flash_attn: bool,
    /// Where the weights live and the forward passes run (llama.cpp: every layer offloaded to
    /// the GPU). A GPU on a build without the `cuda` feature is [`EngineError::CudaNotBuilt`].
    pub device: ComputeDevice,
    /// candle: precision of dense (safetensors) weights and activations (default f32; see
    /// [`CandleOptions::dtype`]). llama.cpp runs the file's own types and ignores it.
    pub dtype: Option<candle_core::DType>,
}

impl LoadOptions {
    /// The candle backend's share of these options.
    pub fn candle(&self) -> CandleOptions {
        CandleOptions {
            device: self.device,
            dtype: self.dtype,
            max_seq_len: self.max_seq_len,
            requant_q8: self.requant_q8,
            max_sequences: self.max_sequences.unwrap_or(DEFAULT_MAX_SEQUENCES),
            dense_f32: false,
        }
    }

    /// Options with only a length cap.
    pub fn with_max_seq_len(max_seq_len: Option<usize>) -> Self {
        Self {
            max_seq_len,
            ..Self::default()
        }
    }
}

/// A model ready to generate: the model, its tokenizer and its chat template.
pub struct LoadedModel {
    /// The model.
    pub model: Box<dyn LanguageModel>,
    /// Its tokenizer.
    pub tokenizer: TextTokenizer,
    /// Its chat template, if the model has one.
    pub chat: Option<ChatTemplate>,
    /// Where it came from.
    pub path: PathBuf,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("info", self.model.info())
            .field("path", &self.path)
            .finish()
    }
}

impl LoadedModel {
    /// The prompt for a user message: the chat template applied (with an optional system
    /// message and the generation prompt), or the raw text when `raw` or without a template.
    pub fn prompt_text(&self, user: &str, system: Option<&str>, raw: bool) -> Result<String> {
        if raw {
            return Ok(match system {
                Some(s) => format!("{s}\n\n{user}"),
                None => user.to_string(),
            });
        }
        let mut msgs = Vec::new();
        if let Some(s) = system {
            msgs.push(ChatMessage::system(s));
        }
        msgs.push(ChatMessage::user(user));
        chat_prompt_text(&self.tokenizer, self.chat.as_ref(), &msgs)
    }

    /// Tokenized prompt for a user message (see [`LoadedModel::prompt_text`]).
    pub fn prompt_tokens(&self, user: &str, system: Option<&str>, raw: bool) -> Result<Vec<u32>> {
        if raw {
            let text = self.prompt_text(user, system, raw)?;
            return self.tokenizer.encode(&text, self.tokenizer.add_bos_token());
        }
        let mut msgs = Vec::new();
        if let Some(s) = system {
            msgs.push(ChatMessage::system(s));
        }
        msgs.push(ChatMessage::user(user));
        chat_prompt_tokens(&self.tokenizer, self.chat.as_ref(), &msgs)
    }
}

/// The prompt text of a conversation: `chat`'s template applied with the generation prompt, or,
/// without a template, the messages' contents joined by blank lines.
pub fn chat_prompt_text(
    tokenizer: &TextTokenizer,
    chat: Option<&ChatTemplate>,
    messages: &[ChatMessage],
) -> Result<String> {
    let Some(t) = chat else {
        return Ok(messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n\n"));
    };
    let bos = tokenizer
        .bos_id()
        .and_then(|i| tokenizer.id_to_token(i))
        .unwrap_or_default();
    let eos = tokenizer
        .eos_ids()
        .first()
        .and_then(|&i| tokenizer.id_to_token(i))
        .unwrap_or_default();
    t.render(messages, true, &bos, &eos)
}

/// The tokenized prompt of a conversation (see [`chat_prompt_text`]). With a chat template the
/// template writes BOS where the model wants one; without, BOS is added when the tokenizer asks.
pub fn chat_prompt_tokens(
    tokenizer: &TextTokenizer,
    chat: Option<&ChatTemplate>,
    messages: &[ChatMessage],
) -> Result<Vec<u32>> {
    let text = chat_prompt_text(tokenizer, chat, messages)?;
    tokenizer.encode(&text, tokenizer.add_bos_token() && chat.is_none())
}

/// Loads a model: a `.gguf` file or a Hugging Face directory; `None` = the default model
/// (fetched on first use). `log` receives progress messages.
pub fn load(
    path: Option<&Path>,
    backend: BackendChoice,
    opts: LoadOptions,
    log: &mut dyn FnMut(&str),
) -> Result<LoadedModel> {
    opts.device.check_built()?;
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => fetch::ensure_default_model(log)?,
    };
    if path.is_dir() {
        if backend == BackendChoice::LlamaCpp {
            return Err(bad_request(
                "backend",
                Backend::LlamaCpp,
                format!(
                    "{} is a safetensors directory, which runs on candle only",
                    path.display()
                ),
            ));
        }
        refuse_flash_attn_on_candle(&opts)?;
        let (model, tokenizer, chat) = load_candle(&path, opts.candle())?;
        return Ok(LoadedModel {
            model: Box::new(model),
            tokenizer,
            chat,
            path,
        });
    }
    if !path.exists() {
        return Err(EngineError::Io {
            path: path.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such model file or directory",
            ),
        });
    }
    let is_gguf = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    if !is_gguf {
        return Err(EngineError::InvalidModel { path, reason: "expected a .gguf file or a directory with config.json + *.safetensors + tokenizer.json".into() });
    }
    let use_llama = match backend {
        BackendChoice::Candle => false,
        BackendChoice::LlamaCpp => true,
        BackendChoice::Auto => {
            cfg!(feature = "llama-cpp") && Backend::LlamaCpp.capabilities().covers(&opts.needs)
        }
    };
    if use_llama {
        return load_llama_cpp(&path, opts, log);
    }
    refuse_flash_attn_on_candle(&opts)?;
    let (model, tokenizer, chat) = load_candle(&path, opts.candle())?;
    log(&format!(
        "loaded {} ({}, {} blocks) on {}, {}",
        path.display(),
        model.info().arch,
        model.info().n_layers,
        Backend::Candle,
        opts.device
    ));
    Ok(LoadedModel {
        model: Box::new(model),
        tokenizer,
        chat,
        path,
    })
}

/// Loads a `.gguf` file or a Hugging Face directory on candle (the concrete model, e.g. to read
/// or replace its weights), with its tokenizer and chat template.
pub fn load_candle(
    path: &Path,
    opts: CandleOptions,
) -> Result<(CandleModel, TextTokenizer, Option<ChatTemplate>)> {
    if path.is_dir() {
        let model = CandleModel::from_hf_dir(path, opts)?;
        let tokenizer = TextTokenizer::from_file(&path.join("tokenizer.json"))?;
        let chat = ChatTemplate::from_tokenizer_config(&path.join("tokenizer_config.json"))?;
        return Ok((model, tokenizer, chat));
    }
    let (model, ct) = CandleModel::from_gguf(path, opts)?;
    let tokenizer = TextTokenizer::from_gguf(&ct)?;
    let chat = ChatTemplate::from_gguf(&ct);
    Ok((model, tokenizer, chat))
}

/// Flash attention is llama.cpp's: a model about to run on candle cannot have it.
fn refuse_flash_attn_on_candle(opts: &LoadOptions) -> Result<()> {
    if opts.flash_attn {
        return Err(bad_request(
            "flash_attn",
            true,
            format!("the {} backend has no flash attention", Backend::Candle),
        ));
    }
    Ok(())
}

#[cfg(feature = "llama-cpp")]
fn load_llama_cpp(
    path: &Path,
    opts: LoadOptions,
    log: &mut dyn FnMut(&str),
) -> Result<LoadedModel> {
    use crate::llama_cpp::{LlamaCppModel, LlamaCppOptions};
    if let Some(capability) = Backend::LlamaCpp.capabilities().missing(&opts.needs) {
        return Err(EngineError::Unsupported {
            backend: Backend::LlamaCpp,
            capability,
        });
    }
    // Validates the file (truncation, header) and gives the tokenizer and chat template.
    let (ct, _) = crate::gguf::read_content(path)?;
    let tokenizer = TextTokenizer::from_gguf(&ct)?;
    let chat = ChatTemplate::from_gguf(&ct);
    let run_path = if opts.requant_q8 {
        let q = crate::llama_cpp::requantized_q8(path)?;
        log(&format!("re-quantized to Q8_0: {}", q.display()));
        q
    } else {
        path.to_path_buf()
    };
    let model = LlamaCppModel::open(
        &run_path,
        LlamaCppOptions {
            max_seq_len: opts.max_seq_len,
            max_sequences: opts.max_sequences.unwrap_or(DEFAULT_MAX_SEQUENCES),
            threads: opts.threads,
            flash_attn: opts.flash_attn,
            gpu: match opts.device {
                ComputeDevice::Cpu => None,
                ComputeDevice::Cuda(n) => Some(n),
            },
        },
    )?;
    log(&format!(
        "loaded {} ({}, {} blocks) on {}, {}",
        path.display(),
        model.info().arch,
        model.info().n_layers,
        Backend::LlamaCpp,
        opts.device
    ));
    Ok(LoadedModel {
        model: Box::new(model),
        tokenizer,
        chat,
        path: path.to_path_buf(),
    })
}

#[cfg(not(feature = "llama-cpp"))]
fn load_llama_cpp(_: &Path, _: LoadOptions, _: &mut dyn FnMut(&str)) -> Result<LoadedModel> {
    Err(EngineError::BackendNotBuilt {
        backend: Backend::LlamaCpp,
    })
}
