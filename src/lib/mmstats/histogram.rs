//! Log-linear histogram buckets over `u64` values, and reader-side percentiles.
//!
//! With `S` sub-bucket bits, values below `2^S` get one bucket each; above, every power of
//! two `[2^e, 2^(e+1))` is cut into `2^S` equal buckets. The relative error of a bucket is
//! therefore at most `2^-S` (6.25 % at the default `S = 4`), the bucket of a value is a
//! `leading_zeros`, a shift and a mask, and `u64::MAX` fits in `(65 - S) * 2^S` buckets
//! (976 at `S = 4`). The writer only counts; percentiles are computed by readers, from a
//! consistent copy of the buckets.

/// Sub-bucket bits the writer uses by default.
pub const DEFAULT_SUB_BITS: u32 = 4;
/// Largest accepted sub-bucket bits.
pub const MAX_SUB_BITS: u32 = 8;

/// Number of buckets for `sub_bits`, or `None` when out of range (1..=8).
pub fn bucket_count(sub_bits: u32) -> Option<usize> {
    (1..=MAX_SUB_BITS)
        .contains(&sub_bits)
        .then(|| ((65 - sub_bits) as usize) << sub_bits)
}

/// The bucket holding `value`.
#[inline]
pub fn bucket_of(value: u64, sub_bits: u32) -> usize {
    let exact = 1u64 << sub_bits;
    if value < exact {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let shift = exponent - sub_bits;
    let group = (exponent - sub_bits + 1) as usize;
    (group << sub_bits) | ((value >> shift) as usize & (exact as usize - 1))
}

/// The smallest and largest value of bucket `index`.
pub fn bucket_range(index: usize, sub_bits: u32) -> (u64, u64) {
    let group = index >> sub_bits;
    let sub = (index & ((1 << sub_bits) - 1)) as u64;
    if group == 0 {
        return (sub, sub);
    }
    let shift = group as u32 - 1;
    let low = ((1u64 << sub_bits) + sub) << shift;
    (low, low + ((1u64 << shift) - 1))
}

/// A consistent copy of a histogram field.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Values recorded.
    pub count: u64,
    /// Their sum (wrapping).
    pub sum: u64,
    /// The smallest value (meaningless when `count` is 0).
    pub min: u64,
    /// The largest value.
    pub max: u64,
    /// Sub-bucket bits of the bucket scheme.
    pub sub_bits: u32,
    /// Count per bucket.
    pub buckets: Vec<u64>,
}

impl Snapshot {
    /// The value at quantile `q` (0..=1): the midpoint of the bucket holding the rank
    /// `ceil(q × count)`, clamped to `[min, max]` (when that is a range: a corrupt file can
    /// say otherwise, and must not make a reader panic). `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, &n) in self.buckets.iter().enumerate() {
            seen = seen.saturating_add(n);
            if seen >= rank {
                let (low, high) = bucket_range(index, self.sub_bits);
                let mid = low + (high - low) / 2;
                return Some(if self.min <= self.max {
                    mid.clamp(self.min, self.max)
                } else {
                    mid
                });
            }
        }
        Some(self.max)
    }

    /// The mean, or `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// Adds `other`'s observations (another writer's file of the same field). Buckets of
    /// another scheme are moved to the bucket of this scheme that holds their midpoint.
    pub fn merge(&mut self, other: &Snapshot) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.count = self.count.saturating_add(other.count);
        self.sum = self.sum.wrapping_add(other.sum);
        for (index, &n) in other.buckets.iter().enumerate().filter(|(_, n)| **n > 0) {
            let at = if other.sub_bits == self.sub_bits {
                index
            } else {
                let (low, high) = bucket_range(index, other.sub_bits);
                bucket_of(low + (high - low) / 2, self.sub_bits)
            };
            if self.buckets.len() <= at {
                self.buckets.resize(at + 1, 0);
            }
            self.buckets[at] = self.buckets[at].saturating_add(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_corrupt_snapshot_gives_a_quantile_not_a_panic() {
        let snap = Snapshot {
            count: 1,
            sum: 0,
            min: u64::MAX,
            max: 0,
            sub_bits: DEFAULT_SUB_BITS,
            buckets: vec![u64::MAX, u64::MAX, 1],
        };
        assert_eq!(snap.quantile(0.5), Some(0));
        assert_eq!(snap.quantile(1.0), Some(0));
    }

    #[test]
    fn small_values_are_exact_and_the_top_bucket_is_the_last() {
        for v in 0..16 {
            assert_eq!(bucket_of(v, 4), v as usize);
            assert_eq!(bucket_range(v as usize, 4), (v, v));
        }
        assert_eq!(bucket_of(u64::MAX, 4), bucket_count(4).unwrap() - 1);
        assert_eq!(bucket_range(bucket_count(4).unwrap() - 1, 4).1, u64::MAX);
    }

    #[test]
    fn quantiles_of_a_uniform_range() {
        let sub_bits = DEFAULT_SUB_BITS;
        let mut snap = Snapshot {
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
            sub_bits,
            buckets: vec![0; bucket_count(sub_bits).unwrap()],
        };
        for v in 1..=1000u64 {
            snap.buckets[bucket_of(v, sub_bits)] += 1;
            snap.count += 1;
            snap.sum += v;
            snap.min = snap.min.min(v);
            snap.max = snap.max.max(v);
        }
        for (q, exact) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0)] {
            let got = snap.quantile(q).unwrap() as f64;
            assert!((got - exact).abs() / exact <= 1.0 / 16.0, "{q}: {got}");
        }
        assert_eq!(snap.quantile(1.0), Some(1000));
        assert_eq!(snap.mean(), Some(500.5));
    }

    fn recorded(values: &[u64], sub_bits: u32) -> Snapshot {
        let mut snap = Snapshot {
            count: 0,
            sum: 0,
            min: 0,
            max: 0,
            sub_bits,
            buckets: vec![0; bucket_count(sub_bits).unwrap()],
        };
        for &v in values {
            snap.merge(&Snapshot {
                count: 1,
                sum: v,
                min: v,
                max: v,
                sub_bits,
                buckets: {
                    let mut b = vec![0; bucket_of(v, sub_bits) + 1];
                    b[bucket_of(v, sub_bits)] = 1;
                    b
                },
            });
        }
        snap
    }

    proptest! {
        #[test]
        fn merging_two_files_is_recording_both(
            a in proptest::collection::vec(any::<u32>(), 0..50),
            b in proptest::collection::vec(any::<u32>(), 0..50),
        ) {
            let a: Vec<u64> = a.into_iter().map(u64::from).collect();
            let b: Vec<u64> = b.into_iter().map(u64::from).collect();
            let mut merged = recorded(&a, 4);
            merged.merge(&recorded(&b, 4));
            let both: Vec<u64> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(merged, recorded(&both, 4));
            // Another scheme lands every observation in the bucket of its midpoint.
            let mut mixed = recorded(&a, 4);
            mixed.merge(&recorded(&b, 8));
            prop_assert_eq!(mixed.count, both.len() as u64);
            prop_assert_eq!(mixed.buckets.iter().sum::<u64>(), both.len() as u64);
        }

        #[test]
        fn every_value_lies_in_its_bucket(v in any::<u64>(), sub_bits in 1u32..=8) {
            let index = bucket_of(v, sub_bits);
            prop_assert!(index < bucket_count(sub_bits).unwrap());
            let (low, high) = bucket_range(index, sub_bits);
            prop_assert!(low <= v && v <= high);
            if v >= 1 << sub_bits {
                prop_assert!((high - low) as f64 <= v as f64 / (1u64 << sub_bits) as f64);
            }
        }
    }
}
