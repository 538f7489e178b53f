//! The llama.cpp backend (through the `llama-cpp-sys-2` bindings): fast GGUF inference. Only llama.cpp's model
//! runtime is used — it returns raw logits rows and adasamp's sampling core does all sampling.
//!
//! One llama.cpp context holds every sequence, with `max_seq_len` KV cells per sequence (one KV
//! stream per [`SeqId`] slot). A forward step packs all feeds into one `llama_decode` batch (split into chunks of at most `n_batch`
//! tokens), so a batch of sequences shares each weight read.

use std::ffi::{c_char, c_void, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Once;

use llama_cpp_sys_2 as sys;

use crate::error::{bad_request, EngineError, Result};
use crate::model::{
    unsupported, Backend, Capability, Feed, ForwardOutput, Input, LanguageModel, Logits, ModelInfo,
    SeqId, DEFAULT_MAX_SEQUENCES,
};

/// Tokens per `llama_decode` call (logical batch).
const N_BATCH: usize = 2048;
/// Tokens per `llama_decode` call when every position's logits are wanted (bounds the output
/// buffer at `N_BATCH_ALL × V` floats).
const N_BATCH_ALL: usize = 512;

/// llama.cpp's log sink: silent (it prints pages of load logs; adasamp reports what matters).
unsafe extern "C" fn quiet_log(_: sys::ggml_log_level, _: *const c_char, _: *mut c_void) {}

/// Initialises llama.cpp once per process.
fn init_backend() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // SAFETY: plain global initialisation calls, run exactly once.
        unsafe {
            sys::llama_log_set(Some(quiet_log), std::ptr::null_mut());
            sys::llama_backend_init();
        }
    });
}

/// How to open a model on llama.cpp.
#[derive(Debug, Clone, Copy)]
pub struct LlamaCppOptions {
    /// Longest sequence (prompt + generation); default: the model's training context, capped
    /// at 4096.
    pub max_seq_len: Option<usize>,
    /// Sequences that can be live at once (the KV cache holds `max_seq_len` tokens for each).
    pub max_sequences: usize,
    /// CPU threads (default: all cores).
    pub threads: Option<usize>,
}

impl Default for LlamaCppOptions {
    fn default() -> Self {
        Self {
            max_seq_len: None,
            max_sequences: DEFAULT_MAX_SEQUENCES,
            threads: None,
        }
    }
}

/// A Q8_0 copy of the GGUF file at `path` (made once with llama.cpp's quantizer, cached as
/// `$ADASAMP_HOME/requant/<name>.Q8_0-requant.gguf`, written atomically). Q8_0 runs on
/// llama.cpp's tiled GEMM kernels, which batched decoding and prefill need for speed; Q4_1/Q5_x
/// only have per-row dot products. Re-quantization rounds every weight once more (see
/// docs/performance.md for its measured effect on the logits).
pub fn requantized_q8(path: &Path) -> Result<std::path::PathBuf> {
    init_backend();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let dir = crate::fetch::home().join("requant");
    let out = dir.join(format!("{stem}.Q8_0-requant.gguf"));
    let io = |p: &Path, e: std::io::Error| EngineError::Io {
        path: p.to_path_buf(),
        source: e,
    };
    let src_meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
    if let Ok(m) = std::fs::metadata(&out) {
        // Reuse a copy newer than its source that reads back whole.
        let fresh = match (m.modified(), src_meta.modified()) {
            (Ok(a), Ok(b)) => a >= b,
            _ => false,
        };
        if fresh && crate::gguf::read_content(&out).is_ok() {
            return Ok(out);
        }
    }
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let tmp = dir.join(format!(
        "{stem}.Q8_0-requant.gguf.part{}",
        std::process::id()
    ));
    let cstr = |p: &Path| {
        p.to_str()
            .and_then(|s| CString::new(s).ok())
            .ok_or_else(|| EngineError::InvalidModel {
                path: p.to_path_buf(),
                reason: "the path is not valid UTF-8 without NUL bytes".into(),
            })
    };
    let (src, dst) = (cstr(path)?, cstr(&tmp)?);
    // SAFETY: default parameters with the target type set; valid C strings.
    let rc = unsafe {
        let mut q = sys::llama_model_quantize_default_params();
        q.ftype = sys::LLAMA_FTYPE_MOSTLY_Q8_0;
        q.allow_requantize = true;
        q.nthread = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
        sys::llama_model_quantize(src.as_ptr(), dst.as_ptr(), &q)
    };
    if rc != 0 {
        let _ = std::fs::remove_file(&tmp);
        return Err(EngineError::InvalidModel {
            path: path.to_path_buf(),
            reason: format!("llama.cpp could not re-quantize it to Q8_0 (code {rc})"),
        });
    }
    std::fs::rename(&tmp, &out).map_err(|e| io(&out, e))?;
    Ok(out)
}

/// An owned `llama_batch` (freed on drop).
struct Batch {
    raw: sys::llama_batch,
    capacity: usize,
}

impl Batch {
    fn new(capacity: usize) -> Self {
        // SAFETY: allocates token/pos/seq_id/logits arrays of `capacity` entries, one seq id each.
        let raw = unsafe { sys::llama_batch_init(capacity as i32, 0, 1) };
        Self { raw, capacity }
    }

    /// Fills the batch with `(seq, pos, token, want_logits)` entries (at most `capacity`).
    fn fill(&mut self, entries: &[(SeqId, usize, u32, Option<usize>)]) {
        assert!(entries.len() <= self.capacity, "batch overflow");
        for (i, &(seq, pos, tok, out)) in entries.iter().enumerate() {
            // SAFETY: `i < capacity`; every array was allocated with `capacity` entries and
            // `seq_id[i]` with room for one id.
            unsafe {
                *self.raw.token.add(i) = tok as sys::llama_token;
                *self.raw.pos.add(i) = pos as sys::llama_pos;
                *self.raw.n_seq_id.add(i) = 1;
                **self.raw.seq_id.add(i) = seq as sys::llama_seq_id;
                *self.raw.logits.add(i) = i8::from(out.is_some());
            }
        }
        self.raw.n_tokens = entries.len() as i32;
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `llama_batch_init` and is freed once.
        unsafe { sys::llama_batch_free(self.raw) }
    }
}

/// A GGUF model running on llama.cpp.
pub struct LlamaCppModel {
    ctx: NonNull<sys::llama_context>,
    model: NonNull<sys::llama_model>,
    info: ModelInfo,
    /// Cached length of each slot's sequence; `None` = free slot.
    slots: Vec<Option<usize>>,
    batch: Batch,
}

// SAFETY: the model and context are owned exclusively by this value; llama.cpp allows using
// them from any thread as long as calls do not overlap, which `&mut self` guarantees for every
// call that touches them.
unsafe impl Send for LlamaCppModel {}

impl Drop for LlamaCppModel {
    fn drop(&mut self) {
        // SAFETY: both pointers are owned and freed once, the context (which uses the model)
        // first.
        unsafe {
            sys::llama_free(self.ctx.as_ptr());
            sys::llama_model_free(self.model.as_ptr());
        }
    }
}

impl std::fmt::Debug for LlamaCppModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaCppModel")
            .field("info", &self.info)
            .finish()
    }
}

/// A string metadata value of the model (`None` if absent).
fn meta_str(model: *const sys::llama_model, key: &str) -> Option<String> {
    let key = CString::new(key).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: `buf` has `buf.len()` bytes; llama.cpp writes a NUL-terminated prefix.
    let n = unsafe {
        sys::llama_model_meta_val_str(model, key.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    };
    if n < 0 {
        return None;
    }
    buf.truncate((n as usize).min(buf.len() - 1));
    String::from_utf8(buf).ok()
}

impl LlamaCppModel {
    /// Opens a GGUF file on llama.cpp.
    pub fn open(path: &Path, opts: LlamaCppOptions) -> Result<Self> {
        init_backend();
        let invalid = |reason: String| EngineError::InvalidModel {
            path: path.to_path_buf(),
            reason,
        };
        let cpath = path
            .to_str()
            .and_then(|s| CString::new(s).ok())
            .ok_or_else(|| invalid("the path is not valid UTF-8 without NUL bytes".into()))?;
        // SAFETY: default parameters, a valid C string; a null result is handled.
        let model = unsafe {
            let params = sys::llama_model_default_params();
            sys::llama_model_load_from_file(cpath.as_ptr(), params)
        };
        let model =
            NonNull::new(model).ok_or_else(|| invalid("llama.cpp could not load it".into()))?;
        let m = model.as_ptr() as *const sys::llama_model;
        // SAFETY: `m` is a loaded model; these are plain getters.
        let (train_ctx, vocab, hidden, layers) = unsafe {
            (
                sys::llama_model_n_ctx_train(m).max(1) as usize,
                sys::llama_vocab_n_tokens(sys::llama_model_get_vocab(m)).max(0) as usize,
                sys::llama_model_n_embd(m).max(0) as usize,
                sys::llama_model_n_layer(m).max(0) as usize,
            )
        };
        let max_seq_len = opts
            .max_seq_len
            .unwrap_or(train_ctx.min(4096))
            .clamp(1, train_ctx);
        let max_sequences = opts.max_sequences.clamp(1, 256);
        let threads = opts
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1) as i32;
        // SAFETY: default parameters adjusted field by field; a null result is handled (and
        // the model freed).
        let ctx = unsafe {
            let mut p = sys::llama_context_default_params();
            p.n_ctx = (max_seq_len * max_sequences) as u32;
            p.n_batch = N_BATCH as u32;
            p.n_ubatch = N_BATCH_ALL as u32;
            p.n_seq_max = max_sequences as u32;
            // One KV stream per sequence: with a unified cache llama.cpp's logits for a sequence depend
            // on what else is in the batch (measured: up to 0.9 logits apart), per-stream caches are
            // bit-identical alone or batched.
            p.kv_unified = false;
            p.n_threads = threads;
            p.n_threads_batch = threads;
            p.no_perf = true;
            // llama.cpp's CPU flash attention works in f16: measured on the default model it moves
            // the logits by KL 0.004 nats from the f32 path (top-1 96.7 %); exactness wins here.
            p.flash_attn_type = sys::LLAMA_FLASH_ATTN_TYPE_DISABLED;
            sys::llama_init_from_model(model.as_ptr(), p)
        };
        let Some(ctx) = NonNull::new(ctx) else {
            // SAFETY: the model was loaded above and is not used afterwards.
            unsafe { sys::llama_model_free(model.as_ptr()) };
            return Err(invalid(format!(
                "llama.cpp could not create a context for {max_sequences} sequences × {max_seq_len} tokens"
            )));
        };
        let info = ModelInfo {
            source: path.display().to_string(),
            arch: meta_str(m, "general.architecture").unwrap_or_else(|| "unknown".into()),
            backend: Backend::LlamaCpp,
            vocab_size: vocab,
            hidden_size: hidden,
            n_layers: layers,
            max_seq_len,
            capabilities: Backend::LlamaCpp.capabilities(),
        };
        Ok(Self {
            ctx,
            model,
            info,
            slots: vec![None; max_sequences],
            batch: Batch::new(N_BATCH),
        })
    }

    /// Removes cache cells of `seq` from position `from` on (`None`: the whole sequence).
    fn remove_cells(&mut self, seq: SeqId, from: Option<usize>) -> bool {
        // SAFETY: a live context; `-1` means "to the end".
        unsafe {
            let mem = sys::llama_get_memory(self.ctx.as_ptr());
            sys::llama_memory_seq_rm(mem, seq as i32, from.map_or(-1, |p| p as i32), -1)
        }
    }

    fn len_of(&self, seq: SeqId) -> Result<usize> {
        self.slots
            .get(seq)
            .copied()
            .flatten()
            .ok_or(EngineError::UnknownSequence { seq })
    }

    /// Checks one feed against the sequence's state and this backend's options; returns its
    /// tokens.
    fn check_feed<'a>(&self, f: &Feed<'a>, feeds: &[Feed<'_>]) -> Result<&'a [u32]> {
        let len = self.len_of(f.seq)?;
        let tokens = match f.input {
            Input::Tokens(t) => t,
            Input::Embeddings(_) => {
                return Err(unsupported(&self.info, Capability::InputEmbeddings))
            }
        };
        if f.exit_after.is_some() {
            return Err(unsupported(&self.info, Capability::EarlyExit));
        }
        if !f.hidden_states.is_empty() {
            return Err(unsupported(&self.info, Capability::HiddenStates));
        }
        if tokens.is_empty() {
            return Err(bad_request(
                "input",
                format!("sequence {}", f.seq),
                "feeds no positions",
            ));
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= self.info.vocab_size) {
            return Err(bad_request(
                "token",
                t,
                format!("outside the vocabulary of {}", self.info.vocab_size),
            ));
        }
        if len + tokens.len() > self.info.max_seq_len {
            return Err(EngineError::ContextOverflow {
                seq: f.seq,
                len: len + tokens.len(),
                max: self.info.max_seq_len,
            });
        }
        if feeds.iter().filter(|g| g.seq == f.seq).count() > 1 {
            return Err(bad_request("seq", f.seq, "fed twice in one step"));
        }
        Ok(tokens)
    }

    /// Runs `feeds` through the model: logits of every fed position for a feed with
    /// `all_logits`, else of its last position. Rows in feed order, positions in order.
    fn run(&mut self, feeds: &[Feed<'_>]) -> Result<ForwardOutput> {
        if feeds.is_empty() {
            return Err(bad_request(
                "feeds",
                "[]",
                "a forward step needs at least one feed",
            ));
        }
        let vocab = self.info.vocab_size;
        // Per feed: its tokens, the sequence's length before the step, its output rows.
        let mut planned = Vec::with_capacity(feeds.len());
        let mut rows = Vec::with_capacity(feeds.len());
        let mut n_rows = 0;
        for f in feeds {
            let tokens = self.check_feed(f, feeds)?;
            planned.push((tokens, self.len_of(f.seq)?));
            let m = if f.all_logits { tokens.len() } else { 1 };
            rows.push(n_rows..n_rows + m);
            n_rows += m;
        }
        let all = feeds.iter().any(|f| f.all_logits);
        let mut out = vec![0f32; n_rows * vocab];
        let chunk = if all { N_BATCH_ALL } else { N_BATCH };
        // (seq, position, token, output row) for every fed token, in feed order.
        let mut entries = Vec::with_capacity(planned.iter().map(|(t, _)| t.len()).sum());
        for ((f, &(tokens, len)), r) in feeds.iter().zip(&planned).zip(&rows) {
            for (i, &t) in tokens.iter().enumerate() {
                let out_row = if f.all_logits {
                    Some(r.start + i)
                } else {
                    (i + 1 == tokens.len()).then_some(r.start)
                };
                entries.push((f.seq, len + i, t, out_row));
            }
        }
        for part in entries.chunks(chunk) {
            self.batch.fill(part);
            // SAFETY: a live context and a filled batch.
            let rc = unsafe { sys::llama_decode(self.ctx.as_ptr(), self.batch.raw) };
            if rc != 0 {
                // Leave every cache as it was before this step.
                for (f, &(_, len)) in feeds.iter().zip(&planned) {
                    self.remove_cells(f.seq, Some(len));
                }
                return Err(if rc == 1 {
                    EngineError::KvCacheFull {
                        tokens: entries.len(),
                    }
                } else {
                    EngineError::BackendFailure {
                        backend: Backend::LlamaCpp,
                        reason: format!("llama_decode failed (code {rc})"),
                    }
                });
            }
            for (i, &(_, _, _, out_row)) in part.iter().enumerate() {
                if let Some(r) = out_row {
                    // SAFETY: position `i` of the last batch requested logits, so llama.cpp
                    // returns a row of `vocab` floats valid until the next decode.
                    let src = unsafe {
                        let p = sys::llama_get_logits_ith(self.ctx.as_ptr(), i as i32);
                        if p.is_null() {
                            return Err(EngineError::BackendFailure {
                                backend: Backend::LlamaCpp,
                                reason: format!("no logits for batch position {i}"),
                            });
                        }
                        std::slice::from_raw_parts(p, vocab)
                    };
                    out[r * vocab..(r + 1) * vocab].copy_from_slice(src);
                }
            }
        }
        for (f, &(tokens, len)) in feeds.iter().zip(&planned) {
            self.slots[f.seq] = Some(len + tokens.len());
        }
        Ok(ForwardOutput {
            logits: Logits {
                rows: n_rows,
                vocab,
                data: out,
            },
            rows,
            hidden: vec![Vec::new(); feeds.len()],
        })
    }
}

impl LanguageModel for LlamaCppModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn max_sequences(&self) -> usize {
        self.slots.len()
    }

    fn new_sequence(&mut self) -> Result<SeqId> {
        let free =
            self.slots
                .iter()
                .position(Option::is_none)
                .ok_or(EngineError::NoFreeSequence {
                    max: self.slots.len(),
                })?;
        self.remove_cells(free, None);
        self.slots[free] = Some(0);
        Ok(free)
    }

    fn free_sequence(&mut self, seq: SeqId) {
        if let Some(slot) = self.slots.get_mut(seq) {
            if slot.take().is_some() {
                self.remove_cells(seq, None);
            }
        }
    }

    fn sequence_len(&self, seq: SeqId) -> Result<usize> {
        self.len_of(seq)
    }

    fn forward(&mut self, feeds: &[Feed<'_>]) -> Result<ForwardOutput> {
        self.run(feeds)
    }

    fn truncate(&mut self, seq: SeqId, len: usize) -> Result<()> {
        let cur = self.len_of(seq)?;
        if len > cur {
            return Err(bad_request(
                "len",
                len,
                format!("sequence {seq} has only {cur} positions"),
            ));
        }
        if !self.remove_cells(seq, Some(len)) {
            return Err(EngineError::BackendFailure {
                backend: Backend::LlamaCpp,
                reason: format!("could not roll sequence {seq} back to {len} positions"),
            });
        }
        self.slots[seq] = Some(len);
        Ok(())
    }

    fn embedding_mixture(&self, _: &[(u32, f32)], _: &mut [f32]) -> Result<()> {
        Err(unsupported(&self.info, Capability::EmbeddingMixture))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_garbage_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("adasamp-llama-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("garbage.gguf");
        std::fs::write(&p, b"GGUF not really").unwrap();
        let e = LlamaCppModel::open(&p, LlamaCppOptions::default()).unwrap_err();
        assert!(e.to_string().contains("garbage.gguf"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
