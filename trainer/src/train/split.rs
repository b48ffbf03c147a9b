//! Stratified train/validation/test split of labelled cells.

use std::collections::BTreeMap;

use serde::Serialize;

use super::rng::Rng;

/// Indices of the three splits (into the labelled cell list).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Split {
    /// Training cells.
    pub train: Vec<usize>,
    /// Validation cells (model selection).
    pub val: Vec<usize>,
    /// Test cells (reported once, at the end).
    pub test: Vec<usize>,
}

/// Splits per class with the seed: each class contributes `round(n·test)` test cells and
/// `round(n·val)` validation cells, but always keeps at least one training cell. A class with a
/// single cell goes to train only; with two cells, one train and one test (no validation).
pub fn stratified_split(
    labels: &[usize],
    val_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> Split {
    let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by_class.entry(l).or_default().push(i);
    }
    let mut split = Split::default();
    for (class, mut idx) in by_class {
        Rng::new(seed, 0x5917 + class as u64).shuffle(&mut idx);
        let n = idx.len();
        let mut n_test = (n as f64 * test_fraction).round() as usize;
        let mut n_val = (n as f64 * val_fraction).round() as usize;
        if n >= 2 && test_fraction > 0.0 {
            n_test = n_test.max(1);
        }
        if n >= 3 && val_fraction > 0.0 {
            n_val = n_val.max(1);
        }
        while n_test + n_val >= n && n_test + n_val > 0 {
            if n_val > 0 {
                n_val -= 1;
            } else {
                n_test -= 1;
            }
        }
        split.test.extend_from_slice(&idx[..n_test]);
        split.val.extend_from_slice(&idx[n_test..n_test + n_val]);
        split.train.extend_from_slice(&idx[n_test + n_val..]);
    }
    split.train.sort_unstable();
    split.val.sort_unstable();
    split.test.sort_unstable();
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratifies_and_handles_tiny_classes() {
        let mut labels = vec![0; 50];
        labels.extend(vec![1; 10]);
        labels.push(2);
        labels.extend([3, 3]);
        let s = stratified_split(&labels, 0.1, 0.2, 7);
        let count = |v: &[usize], c| v.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!(
            (count(&s.train, 0), count(&s.val, 0), count(&s.test, 0)),
            (35, 5, 10)
        );
        assert_eq!(
            (count(&s.train, 1), count(&s.val, 1), count(&s.test, 1)),
            (7, 1, 2)
        );
        assert_eq!(
            (count(&s.train, 2), count(&s.val, 2), count(&s.test, 2)),
            (1, 0, 0)
        );
        assert_eq!((count(&s.train, 3), count(&s.test, 3)), (1, 1));
        assert_eq!(s.train.len() + s.val.len() + s.test.len(), labels.len());
        assert_eq!(s, stratified_split(&labels, 0.1, 0.2, 7));
        assert_ne!(s, stratified_split(&labels, 0.1, 0.2, 8));
    }
}
