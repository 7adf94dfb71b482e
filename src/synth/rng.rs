//! Seeded pseudo-random numbers for the report generator: SplitMix64 plus stream derivation.
//!
//! Every (domain, reporter, day, traffic class) draws from its own stream, derived from the
//! seed and a few integer tags. Adding a scenario's extra traffic therefore never shifts the
//! baseline's numbers, and the output is byte-identical for the same seed and options.
//! Only `+ - * /` and `sqrt` are used on floats (all exactly rounded in IEEE 754), so the
//! output does not depend on the platform's `libm` either.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for synthetic data.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

/// The SplitMix64 increment (the golden ratio in 64-bit fixed point).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijective 64-bit mixer.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable 64-bit hash of a seed and tags, for values that must not depend on draw order.
pub fn hash(seed: u64, tags: &[u64]) -> u64 {
    tags.iter().fold(mix64(seed ^ GAMMA), |h, &t| mix64(h ^ t.wrapping_mul(GAMMA)))
}

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// An independent stream for `tags` under `seed` (e.g. `[DOMAIN, d, REPORTER, r, day]`).
    pub fn derive(seed: u64, tags: &[u64]) -> Self {
        Self::new(hash(seed, tags))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }

    /// A uniform integer in `0..n` (0 when `n` is 0), by Lemire's multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform integer in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform float in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An approximately standard normal value (Irwin–Hall sum of four uniforms, rescaled to
    /// unit variance), which avoids transcendental functions; it is bounded by ±3.46.
    pub fn normal(&mut self) -> f64 {
        let sum = self.unit() + self.unit() + self.unit() + self.unit();
        (sum - 2.0) * 3.0f64.sqrt()
    }

    /// A multiplicative noise factor around 1 with relative spread `sigma`, at least `floor`.
    pub fn noise(&mut self, sigma: f64, floor: f64) -> f64 {
        (1.0 + sigma * self.normal()).max(floor)
    }

    /// Rounds `x` up or down at random so that the expectation is `x` (integer counts that
    /// keep the intended average even when most values are below 1).
    pub fn round(&mut self, x: f64) -> u64 {
        if x <= 0.0 {
            return 0;
        }
        let whole = x.floor();
        whole as u64 + u64::from(self.chance(x - whole))
    }

    /// Number of successes before the first failure when each try succeeds with `p`
    /// (geometric, mean `p / (1 - p)`), capped at `cap`.
    pub fn geometric(&mut self, p: f64, cap: u64) -> u64 {
        let mut n = 0;
        while n < cap && self.chance(p) {
            n += 1;
        }
        n
    }

    /// A uniformly chosen element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_tags_separate_streams() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.iter().all(|&x| x == a[0]));
        let mut x = Rng::derive(7, &[1, 2]);
        let mut y = Rng::derive(7, &[2, 1]);
        assert_ne!(x.next_u64(), y.next_u64());
    }

    #[test]
    fn splitmix_reference_values() {
        // First outputs of SplitMix64 seeded with 0 (reference implementation by Vigna).
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn distributions_have_the_intended_means() {
        let mut r = Rng::new(42);
        let n = 20_000;
        let mean_unit = (0..n).map(|_| r.unit()).sum::<f64>() / f64::from(n);
        assert!((mean_unit - 0.5).abs() < 0.01, "{mean_unit}");
        let mean_round = (0..n).map(|_| r.round(0.3) as f64).sum::<f64>() / f64::from(n);
        assert!((mean_round - 0.3).abs() < 0.02, "{mean_round}");
        let mean_geo = (0..n).map(|_| r.geometric(0.5, 50) as f64).sum::<f64>() / f64::from(n);
        assert!((mean_geo - 1.0).abs() < 0.05, "{mean_geo}");
        assert!((0..n).all(|_| r.below(10) < 10));
        assert_eq!(r.between(5, 5), 5);
    }
}
