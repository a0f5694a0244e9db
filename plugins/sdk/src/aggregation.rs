//! Aggregation in the style of M3 Aggregator: the aggregation types, a per-series accumulator
//! that keeps only what its types need, and windows aligned to a resolution. No bindings here,
//! so it tests on the native target.
//!
//! Definitions, where M3 leaves room:
//! - Quantiles (and Median, which is P50) are exact, by nearest rank: the value at rank
//!   `ceil(q * n)` of the sorted values. The answer is always a value that was seen, as M3's
//!   (it reads quantiles off its sketch); P99 of `[1, 2, 3]` is 3, the median of `[1, 2, 3, 4]`
//!   is 2.
//! - Stdev is the sample standard deviation, dividing by `n - 1`, and 0 below two values, as
//!   M3's `stdev(count, sumSq, sum)`. It is computed with Welford's method rather than from the
//!   sum of squares, which loses every digit when the mean is large against the spread.
//! - Mean is `sum / count`; Last is the last value added, in delivery order.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::Error;

/// One way to reduce a window of a series to a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AggregationType {
    Last,
    Min,
    Max,
    Mean,
    Median,
    Count,
    Sum,
    SumSq,
    Stdev,
    P50,
    P90,
    P95,
    P99,
    P999,
}

impl AggregationType {
    /// Every type, in the order M3 lists them.
    pub const ALL: [AggregationType; 14] = [
        AggregationType::Last,
        AggregationType::Min,
        AggregationType::Max,
        AggregationType::Mean,
        AggregationType::Median,
        AggregationType::Count,
        AggregationType::Sum,
        AggregationType::SumSq,
        AggregationType::Stdev,
        AggregationType::P50,
        AggregationType::P90,
        AggregationType::P95,
        AggregationType::P99,
        AggregationType::P999,
    ];

    /// The lower-case name used in configs and output keys.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregationType::Last => "last",
            AggregationType::Min => "min",
            AggregationType::Max => "max",
            AggregationType::Mean => "mean",
            AggregationType::Median => "median",
            AggregationType::Count => "count",
            AggregationType::Sum => "sum",
            AggregationType::SumSq => "sumsq",
            AggregationType::Stdev => "stdev",
            AggregationType::P50 => "p50",
            AggregationType::P90 => "p90",
            AggregationType::P95 => "p95",
            AggregationType::P99 => "p99",
            AggregationType::P999 => "p999",
        }
    }

    /// The quantile in thousandths, for the types answered from the sorted values. Integers,
    /// so that `ceil(q * n)` is exact (0.99 * 100 is not 99 in floating point).
    pub fn quantile_permille(self) -> Option<u32> {
        match self {
            AggregationType::Median | AggregationType::P50 => Some(500),
            AggregationType::P90 => Some(900),
            AggregationType::P95 => Some(950),
            AggregationType::P99 => Some(990),
            AggregationType::P999 => Some(999),
            _ => None,
        }
    }

    /// Whether the accumulator must keep every value (quantiles); the others need O(1) state.
    pub fn needs_values(self) -> bool {
        self.quantile_permille().is_some()
    }
}

impl fmt::Display for AggregationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AggregationType {
    type Err = Error;

    /// Accepts the lower-case names, and any case of them (M3 writes `P99`, `SumSq`).
    fn from_str(s: &str) -> Result<Self, Error> {
        AggregationType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnknownAggregation(s.to_string()))
    }
}

/// The running state of one series in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Accumulator {
    count: u64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
    last: f64,
    // Welford's running mean and sum of squared deviations, for Stdev.
    mean: f64,
    m2: f64,
    // Every value, only when a quantile was asked for; sorted lazily when one is read.
    values: Option<Vec<f64>>,
    sorted: bool,
}

impl Accumulator {
    /// An empty accumulator; `keep_values` must be true for quantiles and Median to answer.
    pub fn new(keep_values: bool) -> Self {
        Accumulator {
            count: 0,
            sum: 0.0,
            sum_sq: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            last: f64::NAN,
            mean: 0.0,
            m2: 0.0,
            values: keep_values.then(Vec::new),
            sorted: true,
        }
    }

    /// An empty accumulator that keeps what `types` need, and no more.
    pub fn for_types(types: &[AggregationType]) -> Self {
        Accumulator::new(types.iter().any(|t| t.needs_values()))
    }

    /// Adds one value. NaN and infinities are refused (false): one of them would turn every
    /// result of the window into NaN or infinity.
    pub fn add(&mut self, value: f64) -> bool {
        if !value.is_finite() {
            return false;
        }
        self.count += 1;
        self.sum += value;
        self.sum_sq += value * value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.last = value;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
        if let Some(values) = &mut self.values {
            values.push(value);
            self.sorted = false;
        }
        true
    }

    /// How many values were added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether no value was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The value of one aggregation type. Count, Sum and SumSq of nothing are 0; the others
    /// are None without values, and quantiles are None if this accumulator keeps no values.
    /// Takes `&mut self` to sort the kept values once, on the first quantile asked for.
    pub fn value(&mut self, t: AggregationType) -> Option<f64> {
        if let Some(permille) = t.quantile_permille() {
            return self.quantile(permille);
        }
        match t {
            AggregationType::Count => return Some(self.count as f64),
            AggregationType::Sum => return Some(self.sum),
            AggregationType::SumSq => return Some(self.sum_sq),
            _ => {}
        }
        if self.count == 0 {
            return None;
        }
        Some(match t {
            AggregationType::Last => self.last,
            AggregationType::Min => self.min,
            AggregationType::Max => self.max,
            AggregationType::Mean => self.sum / self.count as f64,
            AggregationType::Stdev if self.count < 2 => 0.0,
            AggregationType::Stdev => (self.m2 / (self.count - 1) as f64).max(0.0).sqrt(),
            // Count, Sum, SumSq and the quantiles returned above.
            _ => return None,
        })
    }

    /// Nearest rank: the value at 1-based rank `ceil(permille * n / 1000)` of the sorted values.
    fn quantile(&mut self, permille: u32) -> Option<f64> {
        let values = self.values.as_mut()?;
        if values.is_empty() {
            return None;
        }
        if !self.sorted {
            // Every kept value is finite (add refuses the rest), so total order is numeric.
            values.sort_unstable_by(f64::total_cmp);
            self.sorted = true;
        }
        let n = values.len() as u128;
        let rank = (u128::from(permille) * n).div_ceil(1000).clamp(1, n);
        // rank <= n = values.len(), so the index fits in usize.
        values.get(rank as usize - 1).copied()
    }
}

impl Default for Accumulator {
    /// Keeps values, so that every type answers.
    fn default() -> Self {
        Accumulator::new(true)
    }
}

/// The start of the window of `resolution_ms` that holds `t_ms`: `floor(t / res) * res`, also
/// for times before the epoch (-1 ms lies in the window starting at `-res`). A resolution of 0
/// is taken as 1 ms. Saturates at `i64::MIN` for the few times whose window would start below
/// it, rather than overflow.
pub fn window_start(t_ms: i64, resolution_ms: u64) -> i64 {
    let res = i128::from(resolution_ms.max(1));
    let t = i128::from(t_ms);
    let start = t - t.rem_euclid(res);
    i64::try_from(start).unwrap_or(i64::MIN)
}

/// Per-window state of a rule, keyed by window start (ms since the Unix epoch), so that a rule
/// can hold several open windows at once: inputs of a later window may arrive before an earlier
/// window's flush.
#[derive(Debug, Clone)]
pub struct Windows<T> {
    resolution_ms: u64,
    open: BTreeMap<i64, T>,
}

impl<T> Windows<T> {
    /// No open windows yet. A resolution of 0, or one beyond i64 milliseconds, is refused.
    pub fn new(resolution_ms: u64) -> Result<Self, Error> {
        if resolution_ms == 0 || i64::try_from(resolution_ms).is_err() {
            return Err(Error::BadResolution(resolution_ms));
        }
        Ok(Windows {
            resolution_ms,
            open: BTreeMap::new(),
        })
    }

    /// The window length, ms.
    pub fn resolution_ms(&self) -> u64 {
        self.resolution_ms
    }

    /// The start of the window that holds `t_ms`.
    pub fn start_of(&self, t_ms: i64) -> i64 {
        window_start(t_ms, self.resolution_ms)
    }

    /// The state of the window that holds `t_ms`, made with `make` if it is not open yet.
    pub fn at_with(&mut self, t_ms: i64, make: impl FnOnce() -> T) -> &mut T {
        let start = self.start_of(t_ms);
        self.open.entry(start).or_insert_with(make)
    }

    /// The state of the window that holds `t_ms`, made with `Default` if it is not open yet.
    pub fn at(&mut self, t_ms: i64) -> &mut T
    where
        T: Default,
    {
        self.at_with(t_ms, T::default)
    }

    /// The state of the window starting at `start_ms`, if open.
    pub fn get(&self, start_ms: i64) -> Option<&T> {
        self.open.get(&start_ms)
    }

    /// Closes the window starting at `start_ms`, handing back its state.
    pub fn take(&mut self, start_ms: i64) -> Option<T> {
        self.open.remove(&start_ms)
    }

    /// Closes every window that starts before `end_ms`, oldest first: what a flush of
    /// `[start, end)` should consider, since a window the host never flushed is stale.
    pub fn take_before(&mut self, end_ms: i64) -> Vec<(i64, T)> {
        let later = self.open.split_off(&end_ms);
        std::mem::replace(&mut self.open, later)
            .into_iter()
            .collect()
    }

    /// Open windows, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &T)> {
        self.open.iter().map(|(start, state)| (*start, state))
    }

    /// How many windows are open.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no window is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(values: &[f64]) -> Accumulator {
        let mut a = Accumulator::new(true);
        for v in values {
            assert!(a.add(*v));
        }
        a
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn names_round_trip() {
        for t in AggregationType::ALL {
            assert_eq!(t.as_str().parse::<AggregationType>(), Ok(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!("P99".parse(), Ok(AggregationType::P99));
        assert_eq!("SumSq".parse(), Ok(AggregationType::SumSq));
        let err = "p42".parse::<AggregationType>().unwrap_err();
        assert_eq!(err, Error::UnknownAggregation("p42".into()));
        assert!(err.to_string().contains("p999"), "{err}");
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut a = acc(&(1..=100).rev().map(f64::from).collect::<Vec<_>>());
        assert_eq!(a.value(AggregationType::P50), Some(50.0));
        assert_eq!(a.value(AggregationType::Median), Some(50.0));
        assert_eq!(a.value(AggregationType::P90), Some(90.0));
        assert_eq!(a.value(AggregationType::P95), Some(95.0));
        assert_eq!(a.value(AggregationType::P99), Some(99.0));
        assert_eq!(a.value(AggregationType::P999), Some(100.0));

        let mut small = acc(&[3.0, 1.0, 2.0]);
        assert_eq!(small.value(AggregationType::P99), Some(3.0));
        assert_eq!(small.value(AggregationType::Median), Some(2.0));
        assert_eq!(small.value(AggregationType::P50), Some(2.0));

        let mut even = acc(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!(even.value(AggregationType::Median), Some(2.0));

        let mut one = acc(&[7.5]);
        for t in AggregationType::ALL
            .into_iter()
            .filter(|t| t.needs_values())
        {
            assert_eq!(one.value(t), Some(7.5), "{t}");
        }

        // Values added after a quantile was read are sorted in too.
        assert!(small.add(10.0));
        assert_eq!(small.value(AggregationType::P99), Some(10.0));
        assert_eq!(small.value(AggregationType::Min), Some(1.0));
    }

    #[test]
    fn moments() {
        let mut a = acc(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(a.value(AggregationType::Count), Some(8.0));
        assert_eq!(a.value(AggregationType::Sum), Some(40.0));
        assert_eq!(a.value(AggregationType::SumSq), Some(232.0));
        assert_eq!(a.value(AggregationType::Mean), Some(5.0));
        assert_eq!(a.value(AggregationType::Min), Some(2.0));
        assert_eq!(a.value(AggregationType::Max), Some(9.0));
        assert_eq!(a.value(AggregationType::Last), Some(9.0));
        // Sample stdev: sqrt(32 / 7), not the population's 2.
        let stdev = a.value(AggregationType::Stdev).unwrap();
        assert!(close(stdev, (32.0f64 / 7.0).sqrt()), "{stdev}");

        let mut mean = acc(&[1.0, 2.0, 3.0]);
        assert_eq!(mean.value(AggregationType::Mean), Some(2.0));
        assert_eq!(mean.value(AggregationType::Stdev), Some(1.0));
    }

    #[test]
    fn stdev_is_stable_with_a_large_mean() {
        // The sum-of-squares formula gives 0 or garbage here; Welford keeps the spread.
        let base = 1e9;
        let mut a = acc(&[base + 4.0, base + 7.0, base + 13.0, base + 16.0]);
        let stdev = a.value(AggregationType::Stdev).unwrap();
        assert!(close(stdev, 30f64.sqrt()), "{stdev}");
    }

    #[test]
    fn edge_counts() {
        let mut empty = Accumulator::new(true);
        assert_eq!(empty.value(AggregationType::Count), Some(0.0));
        assert_eq!(empty.value(AggregationType::Sum), Some(0.0));
        assert_eq!(empty.value(AggregationType::SumSq), Some(0.0));
        assert_eq!(empty.value(AggregationType::Mean), None);
        assert_eq!(empty.value(AggregationType::Min), None);
        assert_eq!(empty.value(AggregationType::Stdev), None);
        assert_eq!(empty.value(AggregationType::P99), None);
        assert!(empty.is_empty());

        let mut one = acc(&[-3.5]);
        assert_eq!(one.value(AggregationType::Stdev), Some(0.0));
        assert_eq!(one.value(AggregationType::Last), Some(-3.5));

        let mut refuses = Accumulator::new(false);
        assert!(!refuses.add(f64::NAN));
        assert!(!refuses.add(f64::INFINITY));
        assert!(refuses.add(1.0));
        assert_eq!(refuses.count(), 1);
        // No values kept: quantiles cannot answer.
        assert_eq!(refuses.value(AggregationType::P50), None);
    }

    #[test]
    fn keeps_values_only_when_needed() {
        let cheap = Accumulator::for_types(&[AggregationType::Sum, AggregationType::Stdev]);
        assert!(cheap.values.is_none());
        let full = Accumulator::for_types(&[AggregationType::Sum, AggregationType::Median]);
        assert!(full.values.is_some());
    }

    #[test]
    fn window_alignment() {
        assert_eq!(window_start(0, 10_000), 0);
        assert_eq!(window_start(9_999, 10_000), 0);
        assert_eq!(window_start(10_000, 10_000), 10_000);
        assert_eq!(window_start(1_700_000_012_345, 10_000), 1_700_000_010_000);
        assert_eq!(window_start(-1, 10_000), -10_000);
        assert_eq!(window_start(-10_000, 10_000), -10_000);
        assert_eq!(window_start(-10_001, 10_000), -20_000);
        assert_eq!(window_start(i64::MAX, 1), i64::MAX);
        assert_eq!(window_start(i64::MIN, 1000), i64::MIN);
        assert_eq!(window_start(i64::MIN + 1, 1000), i64::MIN);
        assert_eq!(window_start(5, 0), 5);
    }

    #[test]
    fn windows_hold_several_open() {
        assert_eq!(Windows::<u32>::new(0).unwrap_err(), Error::BadResolution(0));
        assert!(Windows::<u32>::new(u64::MAX).is_err());

        let mut w: Windows<u32> = Windows::new(1000).unwrap();
        *w.at(1500) += 1;
        *w.at(1999) += 1;
        *w.at(2000) += 1;
        *w.at(-1) += 1;
        *w.at_with(3100, || 10) += 1;
        assert_eq!(w.len(), 4);
        assert_eq!(w.get(1000), Some(&2));
        assert_eq!(
            w.iter().collect::<Vec<_>>(),
            vec![(-1000, &1), (1000, &2), (2000, &1), (3000, &11)]
        );
        assert_eq!(w.take(1000), Some(2));
        assert_eq!(w.take(1000), None);
        assert_eq!(w.take_before(3000), vec![(-1000, 1), (2000, 1)]);
        assert_eq!(w.len(), 1);
        assert_eq!(w.take_before(i64::MAX), vec![(3000, 11)]);
        assert!(w.is_empty());
    }
}
