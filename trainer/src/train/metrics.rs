//! Classification metrics: accuracy, macro-F1 (sklearn's definition, over the classes present
//! in the labels or predictions), per-class precision/recall/F1 and the confusion matrix.

use serde::Serialize;

/// Per-class scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScores {
    /// Class name.
    pub label: String,
    /// Precision (0 when nothing was predicted as this class).
    pub precision: f64,
    /// Recall (0 when the class has no true cells).
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// True cells of this class.
    pub support: usize,
}

/// All metrics of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Cells evaluated.
    pub n: usize,
    /// Fraction correct.
    pub accuracy: f64,
    /// Unweighted mean F1 over classes with support or predictions.
    pub macro_f1: f64,
    /// Per class, in label-map order.
    pub per_class: Vec<ClassScores>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<usize>>,
}

/// Computes [`Metrics`] from true and predicted class indices.
pub fn classification_metrics(truth: &[usize], pred: &[usize], labels: &[String]) -> Metrics {
    let k = labels.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&t, &p) in truth.iter().zip(pred) {
        confusion[t][p] += 1;
    }
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let mut per_class = Vec::with_capacity(k);
    let (mut f1_sum, mut present) = (0.0, 0usize);
    for c in 0..k {
        let tp = confusion[c][c] as f64;
        let support: usize = confusion[c].iter().sum();
        let predicted: usize = (0..k).map(|r| confusion[r][c]).sum();
        let precision = if predicted > 0 {
            tp / predicted as f64
        } else {
            0.0
        };
        let recall = if support > 0 {
            tp / support as f64
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        if support > 0 || predicted > 0 {
            f1_sum += f1;
            present += 1;
        }
        per_class.push(ClassScores {
            label: labels[c].clone(),
            precision,
            recall,
            f1,
            support,
        });
    }
    Metrics {
        n: truth.len(),
        accuracy: if truth.is_empty() {
            0.0
        } else {
            correct as f64 / truth.len() as f64
        },
        macro_f1: if present > 0 {
            f1_sum / present as f64
        } else {
            0.0
        },
        per_class,
        confusion,
    }
}

/// Index of the largest value of each row of a row-major `[n, k]` matrix.
pub fn argmax_rows(values: &[f32], k: usize) -> Vec<usize> {
    values
        .chunks(k)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                })
                .0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_sklearn_on_a_small_case() {
        // sklearn: accuracy 0.6, f1_score(average="macro") = (1.0 + 0.5 + 0.0) / 3 = 0.5.
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let m = classification_metrics(&[0, 0, 1, 1, 2], &[0, 0, 1, 2, 1], &labels);
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        let f1: Vec<f64> = m.per_class.iter().map(|c| c.f1).collect();
        assert!((f1[0] - 1.0).abs() < 1e-12 && (f1[1] - 0.5).abs() < 1e-12 && f1[2] == 0.0);
        assert!((m.macro_f1 - 0.5).abs() < 1e-12);
        assert_eq!(m.confusion[1][2], 1);
        assert_eq!(argmax_rows(&[0.1, 0.9, 0.5, 0.2], 2), vec![1, 0]);
    }
}
