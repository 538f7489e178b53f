//! The llama.cpp backend (through the `llama-cpp-sys-2` bindings): fast GGUF inference. Only llama.cpp's model
//! runtime is used — it returns raw logits rows and adasamp's sampling core does all sampling.
//!
//! One llama.cpp context holds every sequence, with `max_seq_len` KV cells per sequence (one KV
//! stream per [`SeqId`] slot). A forward step packs every one-position feed (decoding) into one
//! `llama_decode` batch, so a batch of sequences shares each weight read, and runs every longer
//! feed (a prompt) in batches of its own (see `batches` for why). Input embeddings go through
//! llama.cpp's embedding batch (`llama_batch.embd`); a step feeding both tokens and embeddings
//! runs one batch per kind. Early exit and hidden states are not reachable through llama.cpp's
//! API: they are [`crate::EngineError::Unsupported`]. The embedding mixture reads the file's
//! quantized `token_embd.weight` rows itself ([`crate::embedding_table`]).

use std::ffi::{c_char, c_void, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Once;

use llama_cpp_sys_2 as sys;

use crate::embedding_table::EmbeddingTable;
use crate::error::{bad_request, EngineError, Result};
use crate::model::{
    check_mixture_args, unsupported, Backend, Capability, Feed, ForwardOutput, Input,
    LanguageModel, Logits, ModelInfo, SeqId, DEFAULT_MAX_SEQUENCES,
};

/// Positions per `llama_decode` call at most: llama.cpp's micro-batch, so that one call is one
/// pass over the weights (and the logits buffer holds at most `N_UBATCH × V` floats).
const N_UBATCH: usize = 512;

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
    /// llama.cpp's flash attention. Off by default: on the CPU it works in f16 and moves the
    /// logits (measured on the default model: KL 0.004 nats from the f32 path, top-1 96.7 %);
    /// on, it skips the masked cells of the 256-cell-padded KV window — faster for short
    /// sequences (see docs/performance.md).
    pub flash_attn: bool,
    /// The GPU to run on with every layer offloaded (`None`: the CPU). Needs llama.cpp built
    /// with its CUDA backend (the `cuda` feature).
    pub gpu: Option<usize>,
}

impl Default for LlamaCppOptions {
    fn default() -> Self {
        Self {
            max_seq_len: None,
            max_sequences: DEFAULT_MAX_SEQUENCES,
            threads: None,
            flash_attn: false,
            gpu: None,
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
    let cstr = |p: &Path| {
        p.to_str()
            .and_then(|s| CString::new(s).ok())
            .ok_or_else(|| EngineError::InvalidModel {
                path: p.to_path_buf(),
                reason: "the path is not valid UTF-8 without NUL bytes".into(),
            })
    };
    let src = cstr(path)?;
    // llama.cpp writes the quantized copy into the temporary file's path; it goes into place only
    // when the quantizer succeeded.
    crate::files::write_atomic_with(&out, |_, tmp| {
        let dst = cstr(tmp)?;
        // SAFETY: default parameters with the target type set; valid C strings.
        let rc = unsafe {
            let mut q = sys::llama_model_quantize_default_params();
            q.ftype = sys::LLAMA_FTYPE_MOSTLY_Q8_0;
            q.allow_requantize = true;
            q.nthread = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
            sys::llama_model_quantize(src.as_ptr(), dst.as_ptr(), &q)
        };
        if rc != 0 {
            return Err(EngineError::InvalidModel {
                path: path.to_path_buf(),
                reason: format!("llama.cpp could not re-quantize it to Q8_0 (code {rc})"),
            });
        }
        Ok(())
    })?;
    Ok(out)
}

/// What one position of a step feeds: a token id, or an input embedding row.
#[derive(Debug, Clone, Copy)]
enum Piece<'a> {
    Token(u32),
    Embedding(&'a [f32]),
}

/// One fed position: sequence, position, what is fed, output row (if its logits are wanted).
type Entry<'a> = (SeqId, usize, Piece<'a>, Option<usize>);

/// The `llama_decode` calls of one step, each at most [`N_UBATCH`] positions. Every feed is cut
/// by [`pieces`]; a call holds pieces of one length and kind (tokens or embeddings), ordered by
/// sequence — the decodes of a step (pieces of one position) in one call — and a feed's pieces go
/// in order, one per round of calls. `entries` holds the positions feed after feed;
/// `planned[k].0` is how many feed `k` has.
///
/// Why: llama.cpp runs a call over per-sequence KV streams as micro-batches of consecutive,
/// increasing sequence ids with the same number of positions each (at most `n_ubatch` in all),
/// one pass over the weights per micro-batch — ordered by sequence, a step decoding sequences
/// 0..n is one pass whatever the feed order. And it computes attention for a micro-batch of one
/// position per sequence along another path than for several, which rounds differently
/// (measured on the default model: up to 0.48 apart in the last logits row): with pieces of one
/// length in a call, no piece is split, so a piece of two or more positions never runs as
/// one-position micro-batches, and a prompt's cache and logits are the same whether it is fed
/// beside other sequences or alone, whole or in pieces of two or more.
fn batches<'a>(entries: &[Entry<'a>], planned: &[(usize, usize)]) -> Vec<Vec<Entry<'a>>> {
    // Each feed's pieces, as ranges of `entries`.
    let mut cuts: Vec<Vec<std::ops::Range<usize>>> = Vec::with_capacity(planned.len());
    let mut at = 0;
    for &(n, _) in planned {
        cuts.push(
            pieces(n, N_UBATCH)
                .map(|r| at + r.start..at + r.end)
                .collect(),
        );
        at += n;
    }
    let rounds = cuts.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for round in 0..rounds {
        // (length, embeddings, sequence, positions) of each feed's piece in this round.
        let mut these: Vec<(usize, bool, SeqId, std::ops::Range<usize>)> = cuts
            .iter()
            .filter_map(|c| c.get(round))
            .map(|r| {
                let first = &entries[r.start];
                let embd = matches!(first.2, Piece::Embedding(_));
                (r.len(), embd, first.0, r.clone())
            })
            .collect();
        these.sort_by_key(|t| (t.0, t.1, t.2));
        for group in these.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            for call in group.chunks((N_UBATCH / group[0].0).max(1)) {
                out.push(
                    call.iter()
                        .flat_map(|t| entries[t.3.clone()].iter().copied())
                        .collect(),
                );
            }
        }
    }
    out
}

/// Cuts `n` positions into consecutive ranges of at most `limit` (≥ 3) positions, none of a
/// single position unless `n` is 1.
fn pieces(n: usize, limit: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= n {
            return None;
        }
        let mut len = (n - at).min(limit);
        if n - at - len == 1 {
            len -= 1;
        }
        at += len;
        Some(at - len..at)
    })
}

/// An owned `llama_batch` (freed on drop): token ids, or embedding rows of `embd` values.
struct Batch {
    raw: sys::llama_batch,
    capacity: usize,
    /// Values per embedding row; 0 for a token batch.
    embd: usize,
}

impl Batch {
    fn new(capacity: usize, embd: usize) -> Self {
        // SAFETY: allocates token (or, with `embd > 0`, `capacity × embd` embedding values),
        // pos, seq_id and logits arrays of `capacity` entries, one seq id each.
        let raw = unsafe { sys::llama_batch_init(capacity as i32, embd as i32, 1) };
        Self {
            raw,
            capacity,
            embd,
        }
    }

    /// Fills the batch with entries (at most `capacity`, all tokens for a token batch, all
    /// embedding rows of `embd` values for an embedding batch).
    fn fill(&mut self, entries: &[Entry<'_>]) {
        assert!(entries.len() <= self.capacity, "batch overflow");
        for (i, &(seq, pos, piece, out)) in entries.iter().enumerate() {
            // SAFETY: `i < capacity`; every array was allocated with `capacity` entries (the
            // embedding array with `capacity × embd` values) and `seq_id[i]` with room for one
            // id; the piece kind matches the batch kind (asserted).
            unsafe {
                match piece {
                    Piece::Token(tok) => {
                        assert!(self.embd == 0, "a token in an embedding batch");
                        *self.raw.token.add(i) = tok as sys::llama_token;
                    }
                    Piece::Embedding(row) => {
                        assert!(row.len() == self.embd, "embedding row of the wrong width");
                        std::ptr::copy_nonoverlapping(
                            row.as_ptr(),
                            self.raw.embd.add(i * self.embd),
                            self.embd,
                        );
                    }
                }
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
    /// The embedding-input batch, made on first use.
    embd_batch: Option<Batch>,
    /// The file's token-embedding matrix (quantized) for the embedding mixture, read on first
    /// use.
    embed_table: std::sync::OnceLock<EmbeddingTable>,
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
            let mut params = sys::llama_model_default_params();
            match opts.gpu {
                Some(n) => {
                    params.n_gpu_layers = i32::MAX;
                    params.main_gpu = i32::try_from(n).unwrap_or(i32::MAX);
                    params.split_mode = sys::LLAMA_SPLIT_MODE_NONE;
                }
                None => params.n_gpu_layers = 0,
            }
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
            p.n_batch = N_UBATCH as u32;
            p.n_ubatch = N_UBATCH as u32;
            p.n_seq_max = max_sequences as u32;
            // One KV stream per sequence: with a unified cache llama.cpp's logits for a sequence depend
            // on what else is in the batch (measured: up to 0.9 logits apart), per-stream caches are
            // bit-identical alone or batched.
            p.kv_unified = false;
            p.n_threads = threads;
            p.n_threads_batch = threads;
            p.no_perf = true;
            // On the CPU nothing goes to a GPU, not even the large-batch matmuls llama.cpp
            // would otherwise offload when it is built with CUDA.
            p.op_offload = opts.gpu.is_some();
            // llama.cpp's CPU flash attention works in f16: measured on the default model it moves
            // the logits by KL 0.004 nats from the f32 path (top-1 96.7 %); exactness wins unless
            // asked for.
            p.flash_attn_type = if opts.flash_attn {
                sys::LLAMA_FLASH_ATTN_TYPE_ENABLED
            } else {
                sys::LLAMA_FLASH_ATTN_TYPE_DISABLED
            };
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
            batch: Batch::new(N_UBATCH, 0),
            embd_batch: None,
            embed_table: std::sync::OnceLock::new(),
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

    /// Checks one feed against the sequence's state and this backend's options; returns the
    /// number of positions it feeds.
    fn check_feed(&self, f: &Feed<'_>, feeds: &[Feed<'_>]) -> Result<usize> {
        let len = self.len_of(f.seq)?;
        let d = self.info.hidden_size;
        let n = match f.input {
            Input::Tokens(t) => {
                if let Some(&t) = t.iter().find(|&&t| t as usize >= self.info.vocab_size) {
                    return Err(bad_request(
                        "token",
                        t,
                        format!("outside the vocabulary of {}", self.info.vocab_size),
                    ));
                }
                t.len()
            }
            Input::Embeddings(e) => {
                if !e.len().is_multiple_of(d) {
                    return Err(bad_request(
                        "embeddings",
                        format!("{} values", e.len()),
                        format!("not a multiple of the hidden size {d}"),
                    ));
                }
                e.len() / d
            }
        };
        if f.exit_after.is_some() {
            return Err(unsupported(&self.info, Capability::EarlyExit));
        }
        if !f.hidden_states.is_empty() {
            return Err(unsupported(&self.info, Capability::HiddenStates));
        }
        if n == 0 {
            return Err(bad_request(
                "input",
                format!("sequence {}", f.seq),
                "feeds no positions",
            ));
        }
        if len + n > self.info.max_seq_len {
            return Err(EngineError::ContextOverflow {
                seq: f.seq,
                len: len + n,
                max: self.info.max_seq_len,
            });
        }
        if feeds.iter().filter(|g| g.seq == f.seq).count() > 1 {
            return Err(bad_request("seq", f.seq, "fed twice in one step"));
        }
        Ok(n)
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
        // Per feed: its positions, the sequence's length before the step, its output rows.
        let mut planned = Vec::with_capacity(feeds.len());
        let mut rows = Vec::with_capacity(feeds.len());
        let mut n_rows = 0;
        for f in feeds {
            let n = self.check_feed(f, feeds)?;
            planned.push((n, self.len_of(f.seq)?));
            let m = if f.all_logits { n } else { 1 };
            rows.push(n_rows..n_rows + m);
            n_rows += m;
        }
        let mut out = vec![0f32; n_rows * vocab];
        let d = self.info.hidden_size;
        // Every fed position, feed after feed.
        let mut entries: Vec<Entry<'_>> = Vec::with_capacity(planned.iter().map(|&(n, _)| n).sum());
        for ((f, &(n, len)), r) in feeds.iter().zip(&planned).zip(&rows) {
            for i in 0..n {
                let out_row = if f.all_logits {
                    Some(r.start + i)
                } else {
                    (i + 1 == n).then_some(r.start)
                };
                let piece = match f.input {
                    Input::Tokens(t) => Piece::Token(t[i]),
                    Input::Embeddings(e) => Piece::Embedding(&e[i * d..(i + 1) * d]),
                };
                entries.push((f.seq, len + i, piece, out_row));
            }
        }
        for part in batches(&entries, &planned) {
            let kind = matches!(part[0].2, Piece::Embedding(_));
            let batch = if kind {
                self.embd_batch
                    .get_or_insert_with(|| Batch::new(N_UBATCH, d))
            } else {
                &mut self.batch
            };
            batch.fill(&part);
            let raw = batch.raw;
            // SAFETY: a live context and a filled batch.
            let rc = unsafe { sys::llama_decode(self.ctx.as_ptr(), raw) };
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
        for (f, &(n, len)) in feeds.iter().zip(&planned) {
            self.slots[f.seq] = Some(len + n);
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

    fn embedding_mixture(&self, probs: &[(u32, f32)], out: &mut [f32]) -> Result<()> {
        check_mixture_args(&self.info, probs, out)?;
        let table = match self.embed_table.get() {
            Some(t) => t,
            None => {
                let t = EmbeddingTable::open(Path::new(&self.info.source))?;
                if (t.vocab(), t.hidden()) != (self.info.vocab_size, self.info.hidden_size) {
                    return Err(EngineError::InvalidModel {
                        path: self.info.source.clone().into(),
                        reason: format!(
                            "token_embd.weight is [{}, {}] but llama.cpp reports vocabulary {} and hidden size {}",
                            t.vocab(),
                            t.hidden(),
                            self.info.vocab_size,
                            self.info.hidden_size
                        ),
                    });
                }
                self.embed_table.get_or_init(|| t)
            }
        };
        table.mixture(probs, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_every_position_and_are_never_single() {
        for limit in [3, 4, 512] {
            for n in 1..2000 {
                let cut: Vec<_> = pieces(n, limit).collect();
                assert_eq!(cut.first().map(|r| r.start), Some(0));
                assert_eq!(cut.last().map(|r| r.end), Some(n));
                assert!(cut.windows(2).all(|w| w[0].end == w[1].start));
                assert!(cut.iter().all(|r| r.len() <= limit));
                assert!(
                    n == 1 || cut.iter().all(|r| r.len() >= 2),
                    "{n} by {limit}: {cut:?}"
                );
            }
        }
    }

    #[test]
    fn decodes_go_together_by_sequence_and_longer_feeds_alone() {
        // Feeds: sequence 5 decodes, 2 prefills 3 positions, 0 decodes, 7 decodes.
        let planned = [(1, 10), (3, 0), (1, 4), (1, 9)];
        let seqs = [5, 2, 0, 7];
        let mut entries = Vec::new();
        for (&(n, len), &seq) in planned.iter().zip(&seqs) {
            for i in 0..n {
                entries.push((seq, len + i, Piece::Token(1), None));
            }
        }
        let got: Vec<Vec<(SeqId, usize)>> = batches(&entries, &planned)
            .iter()
            .map(|b| b.iter().map(|e| (e.0, e.1)).collect())
            .collect();
        assert_eq!(
            got,
            [vec![(0, 4), (5, 10), (7, 9)], vec![(2, 0), (2, 1), (2, 2)]]
        );
    }

    #[test]
    fn pieces_of_one_length_share_a_call_and_a_feed_goes_in_order() {
        // Nine prompts of 64 tokens (sequences 8..0), one of 600 (sequence 20), one of 2.
        let mut planned = vec![(64, 0); 9];
        planned.push((600, 0));
        planned.push((2, 5));
        let seqs: Vec<SeqId> = (0..9).rev().chain([20, 9]).collect();
        let mut entries = Vec::new();
        for (&(n, len), &seq) in planned.iter().zip(&seqs) {
            for i in 0..n {
                entries.push((seq, len + i, Piece::Token(1), None));
            }
        }
        let calls = batches(&entries, &planned);
        let shape: Vec<Vec<(SeqId, usize)>> = calls
            .iter()
            .map(|c| {
                let mut per: Vec<(SeqId, usize)> = Vec::new();
                for e in c {
                    match per.last_mut() {
                        Some((s, n)) if *s == e.0 => *n += 1,
                        _ => per.push((e.0, 1)),
                    }
                }
                per
            })
            .collect();
        let eight: Vec<(SeqId, usize)> = (0..8).map(|s| (s, 64)).collect();
        assert_eq!(
            shape,
            [
                vec![(9, 2)],
                eight,
                vec![(8, 64)],
                vec![(20, 512)],
                vec![(20, 88)],
            ]
        );
        assert!(calls.iter().all(|c| c.len() <= N_UBATCH));
        // The long feed's positions run in order across calls.
        let long: Vec<usize> = calls
            .iter()
            .flatten()
            .filter(|e| e.0 == 20)
            .map(|e| e.1)
            .collect();
        assert_eq!(long, (0..600).collect::<Vec<_>>());
    }

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
