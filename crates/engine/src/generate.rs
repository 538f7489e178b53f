//! Runs a batch of requests to completion on the [`Scheduler`]: every request is queued at once
//! (admitted as the model's sequence slots allow) and decoded until EOS, a stop string or the
//! token limit.

use crate::error::Result;
use crate::model::LanguageModel;
use crate::scheduler::{Scheduler, Timing};
use crate::sequence::{Generation, GenerationRequest};
use crate::tokenizer::TextTokenizer;

/// Runs every request to completion; `on_text(i, piece)` receives request `i`'s newly decoded
/// text as it is generated. Generations come back in request order. A request that fails (a
/// sampling error) fails the whole call, as does a model error.
pub fn generate(
    model: &mut dyn LanguageModel,
    tok: &TextTokenizer,
    requests: Vec<GenerationRequest>,
    on_text: &mut dyn FnMut(usize, &str),
) -> Result<(Vec<Generation>, Timing)> {
    let n = requests.len();
    let mut sched = Scheduler::new(model, tok, usize::MAX);
    // A fresh scheduler numbers requests 0, 1, … in the order they are added.
    for r in requests {
        sched.add(r)?;
    }
    let mut out: Vec<Option<Generation>> = (0..n).map(|_| None).collect();
    loop {
        for f in sched.take_finished() {
            out[f.id.0 as usize] = Some(f.result?);
        }
        if sched.is_idle() {
            break;
        }
        let report = sched.step()?;
        for e in report.events() {
            let text = report.text(e);
            if !text.is_empty() {
                on_text(e.id.0 as usize, text);
            }
        }
    }
    let timing = sched.timing();
    // Every request was either finished at `add` or run until the scheduler went idle.
    let gens: Vec<Generation> = out.into_iter().flatten().collect();
    debug_assert_eq!(gens.len(), n, "a request produced no generation");
    Ok((gens, timing))
}
