//! Seeded, portable randomness: ChaCha20 streams and a uniform draw that is bit-identical on every
//! machine.

use rand::{RngCore, SeedableRng};
pub use rand_chacha::ChaCha20Rng;

/// A ChaCha20 generator for `seed`, on stream `stream` (e.g. the row or sequence index), so every
/// row of a batch gets its own reproducible sequence whatever the batch size.
pub fn seeded(seed: u64, stream: u64) -> ChaCha20Rng {
    let mut r = ChaCha20Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// Uniform in `[0, 1)` from the top 53 bits of one `u64`.
pub fn uniform(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_stream_values() {
        // Pinned: a change here breaks reproducibility of every seeded generation.
        let mut r = seeded(42, 0);
        let a = uniform(&mut r);
        let mut r2 = seeded(42, 0);
        assert_eq!(a, uniform(&mut r2));
        let mut r3 = seeded(42, 1);
        assert_ne!(a, uniform(&mut r3));
        assert!((0.0..1.0).contains(&a));
    }
}
