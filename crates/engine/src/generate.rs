//! Runs a batch of requests to completion on the [`Scheduler`]: every request is queued at once
//! (admitted as the model's sequence slots allow) and decoded until EOS, a stop string or the
//! token limit.
//!
//! With the prefix cache ([`generate_with`]) the requests are admitted in [`lane_order`]: prompts
//! sorted, cut into as many runs of neighbours as sequences run at once, the runs interleaved,
//! so a request admitted when its predecessor in the run finishes finds that predecessor's prompt
//! — the most similar one — cached. Generations still come back in request order.

use crate::error::Result;
use crate::model::LanguageModel;
use crate::scheduler::{Scheduler, SchedulerOptions, Timing};
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
    generate_with(model, tok, requests, SchedulerOptions::default(), on_text)
}

/// [`generate`] on a scheduler with `options`; with the prefix cache on, the requests are
/// admitted in [`lane_order`] (see the module doc). What each request generates does not depend
/// on the options on a batch-invariant backend (llama.cpp as this crate drives it, candle).
pub fn generate_with(
    model: &mut dyn LanguageModel,
    tok: &TextTokenizer,
    requests: Vec<GenerationRequest>,
    options: SchedulerOptions,
    on_text: &mut dyn FnMut(usize, &str),
) -> Result<(Vec<Generation>, Timing)> {
    let n = requests.len();
    let mut sched = Scheduler::with_options(model, tok, usize::MAX, options);
    let order: Vec<usize> = if options.prefix_cache {
        let prompts: Vec<&[u32]> = requests.iter().map(|r| r.prompt.as_slice()).collect();
        lane_order(&prompts, sched.capacity())
    } else {
        (0..n).collect()
    };
    // A fresh scheduler numbers requests 0, 1, … in the order they are added: `order[id]` is
    // the request index of scheduler id `id`.
    let mut slots: Vec<Option<GenerationRequest>> = requests.into_iter().map(Some).collect();
    for &i in &order {
        if let Some(r) = slots[i].take() {
            sched.add(r)?;
        }
    }
    let mut out: Vec<Option<Generation>> = (0..n).map(|_| None).collect();
    loop {
        for f in sched.take_finished() {
            out[order[f.id.0 as usize]] = Some(f.result?);
        }
        if sched.is_idle() {
            break;
        }
        let report = sched.step()?;
        for e in report.events() {
            let text = report.text(e);
            if !text.is_empty() {
                on_text(order[e.id.0 as usize], text);
            }
        }
    }
    let timing = sched.timing();
    // Every request was either finished at `add` or run until the scheduler went idle.
    let gens: Vec<Generation> = out.into_iter().flatten().collect();
    debug_assert_eq!(gens.len(), n, "a request produced no generation");
    Ok((gens, timing))
}

/// An admission order of `prompts` for a scheduler running `lanes` sequences at once with the
/// prefix cache: the prompt indices sorted by prompt (lexicographically, so neighbours share the
/// longest prefixes), cut into `lanes` consecutive runs (lengths differing by at most one, the
/// longer first), then interleaved — the first of every run, the second of every run, … When
/// the requests finish together (one token each, say), the `k`-th admission wave is the `k`-th
/// element of every run and finds the `(k−1)`-th, its sorted neighbour, cached. A permutation of
/// `0..prompts.len()`.
pub fn lane_order(prompts: &[&[u32]], lanes: usize) -> Vec<usize> {
    let n = prompts.len();
    let mut sorted: Vec<usize> = (0..n).collect();
    sorted.sort_by(|&a, &b| prompts[a].cmp(prompts[b]).then(a.cmp(&b)));
    let lanes = lanes.clamp(1, n.max(1));
    let (base, extra) = (n / lanes, n % lanes);
    // Run `l` starts at `start(l)` and has `base + 1` elements for the first `extra` runs.
    let start = |l: usize| l * base + l.min(extra);
    let mut order = Vec::with_capacity(n);
    for k in 0..=base {
        for l in 0..lanes {
            let len = base + usize::from(l < extra);
            if k < len {
                order.push(sorted[start(l) + k]);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_permutation(order: &[usize], n: usize) -> bool {
        let mut seen = vec![false; n];
        order.len() == n
            && order
                .iter()
                .all(|&i| i < n && !std::mem::replace(&mut seen[i], true))
    }

    #[test]
    fn lane_order_puts_sorted_neighbours_one_wave_apart() {
        // Two questions (prefix 1 or 2), four answers each, two lanes: each wave holds one
        // request of each question, the next wave the same question's next one.
        let prompts: Vec<Vec<u32>> = vec![
            vec![2, 0],
            vec![1, 3],
            vec![2, 1],
            vec![1, 0],
            vec![1, 2],
            vec![2, 3],
            vec![1, 1],
            vec![2, 2],
        ];
        let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        let order = lane_order(&refs, 2);
        let firsts: Vec<u32> = order.iter().map(|&i| prompts[i][0]).collect();
        assert_eq!(firsts, [1, 2, 1, 2, 1, 2, 1, 2]);
        let seconds: Vec<u32> = order.iter().map(|&i| prompts[i][1]).collect();
        assert_eq!(seconds, [0, 0, 1, 1, 2, 2, 3, 3]);
    }

    #[test]
    fn lane_order_is_a_permutation_for_any_lane_count() {
        for n in 0..12 {
            let prompts: Vec<Vec<u32>> =
                (0..n).map(|i| vec![(i * 7 % 5) as u32, i as u32]).collect();
            let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
            for lanes in 0..15 {
                let order = lane_order(&refs, lanes);
                assert!(
                    is_permutation(&order, n as usize),
                    "n {n} lanes {lanes}: {order:?}"
                );
            }
        }
        // Uneven runs: 7 over 3 lanes is 3 + 2 + 2, waves 3, 3, 1.
        let prompts: Vec<Vec<u32>> = (0..7).map(|i| vec![i]).collect();
        let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        assert_eq!(lane_order(&refs, 3), [0, 3, 5, 1, 4, 6, 2]);
    }
}
