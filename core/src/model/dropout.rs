//! Dropout with its mask drawn on the host when training on the CPU backend.
//!
//! burn's `Dropout` draws one Bernoulli float per element through ChaCha on a single thread,
//! then multiplies twice. On flex that was about a sixth of a training step's CPU time: the
//! attention-probability dropout alone draws `batch × heads × L²` numbers per layer. Here the
//! mask, already scaled by `1 / (1 − p)`, comes from a counter-based hash (SplitMix64 of the
//! seed, the call and the element index) filled in parallel, and is applied in one multiply.
//! The distribution is burn's: each element kept with probability `1 − p` and scaled by
//! `1 / (1 − p)`. Other backends keep burn's draw on the device.
//!
//! The masks depend on [`seed`] and the order of dropout calls since, both per thread, so a
//! trainer that seeds every step (as it seeds the device) gets the same masks on resume.

use std::cell::Cell;

use burn::nn::Dropout;
use burn::prelude::*;
use rayon::prelude::*;

thread_local! {
    static SEED: Cell<u64> = const { Cell::new(0x5EED) };
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

/// Seeds this thread's host dropout masks and restarts their call count.
pub fn seed(seed: u64) {
    SEED.with(|s| s.set(seed));
    CALLS.with(|c| c.set(0));
}

/// `dropout.forward(x)`, with the mask drawn on the host on the flex backend.
pub fn forward<const D: usize>(dropout: &Dropout, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !dropout.training.is_enabled() || !device.is_autodiff() || dropout.prob == 0.0 {
        return x;
    }
    // `==` ignores the autodiff wrapper: this asks for the CPU backend.
    if device != Device::flex() {
        return dropout.forward(x);
    }
    let shape = x.shape();
    let mask = host_mask(shape.num_elements(), dropout.prob, next_key());
    x * Tensor::<D>::from_data(TensorData::new(mask, shape), &device)
}

/// The key of this thread's next dropout call (counts as a call).
pub fn next_key() -> u64 {
    let call = CALLS.with(|c| {
        let n = c.get();
        c.set(n + 1);
        n
    });
    splitmix64(SEED.with(Cell::get) ^ splitmix64(call))
}

/// `n` values, each `1 / (1 − p)` with probability `1 − p`, else 0.
fn host_mask(n: usize, p: f64, key: u64) -> Vec<f32> {
    let keep = 1.0 - p;
    // Kept when the top 32 bits fall below keep · 2³².
    let threshold = (keep * 4_294_967_296.0).min(4_294_967_295.0) as u64;
    let scale = (1.0 / keep) as f32;
    const CHUNK: usize = 1 << 16;
    let mut mask = vec![0f32; n];
    mask.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let base = (c * CHUNK) as u64;
            for (i, m) in chunk.iter_mut().enumerate() {
                let r = splitmix64(key.wrapping_add((base + i as u64).wrapping_mul(GOLDEN)));
                *m = if (r >> 32) < threshold { scale } else { 0.0 };
            }
        });
    mask
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a 64-bit integer mix, also keying the attention masks of
/// [`super::host_attention_train`].
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_keeps_the_right_share_scaled() {
        let (n, p) = (1 << 20, 0.1);
        let m = host_mask(n, p, 7);
        let kept = m.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
        assert!((kept - 0.9).abs() < 0.002, "kept share {kept}");
        let scale = (1.0 / 0.9) as f32;
        assert!(m.iter().all(|&v| v == 0.0 || v == scale));
        let mean = m.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.003, "expectation {mean}");
        // Different keys, different masks; the same key, the same mask.
        assert_ne!(m, host_mask(n, p, 8));
        assert_eq!(m, host_mask(n, p, 7));
        // Neighbouring elements are not correlated.
        let pairs = m.windows(2).filter(|w| w[0] == 0.0 && w[1] == 0.0).count() as f64;
        assert!(
            (pairs / n as f64 - 0.01).abs() < 0.001,
            "joint drop share {}",
            pairs / n as f64
        );
    }

    #[test]
    fn masks_follow_the_seed_and_call_order() {
        let dev = Device::flex().autodiff();
        let d = burn::nn::DropoutConfig::new(0.5).init();
        let x = || Tensor::<2>::ones([64, 64], &dev);
        let draw = || {
            forward(&d, x())
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32")
        };
        seed(3);
        let (a1, a2) = (draw(), draw());
        seed(3);
        assert_eq!(draw(), a1, "same seed, same first mask");
        assert_eq!(draw(), a2, "same seed, same second mask");
        assert_ne!(a1, a2, "calls draw different masks");
        let eval = Tensor::<2>::ones([4, 4], &Device::flex());
        let out = forward(&d, eval.clone())
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        assert!(out.iter().all(|&v| v == 1.0), "no dropout without autodiff");
    }
}
