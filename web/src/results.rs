//! Turning probabilities into calls: arg-max, the "unassigned" threshold, label counts, the CSV
//! download, and the metrics saved to the registry (with or without true labels). Pure
//! functions, so the numbers the page shows are unit-tested.

use std::collections::{BTreeMap, BTreeSet};

use crate::protocol::CellRow;

/// The label given to cells whose best probability is below the threshold.
pub const UNASSIGNED: &str = "unassigned";

/// Index and value of the largest probability (first one on ties, like `argmax` in core).
pub fn argmax(p: &[f32]) -> (usize, f32) {
    p.iter().enumerate().fold(
        (0, f32::MIN),
        |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
    )
}

/// The call for one cell: its arg-max label, or [`UNASSIGNED`] below `threshold`.
pub fn call<'a>(p: &[f32], labels: &'a [String], threshold: f32) -> &'a str {
    let (i, v) = argmax(p);
    if v < threshold {
        UNASSIGNED
    } else {
        labels.get(i).map(String::as_str).unwrap_or(UNASSIGNED)
    }
}

/// Cells per call, largest first (ties by label), including [`UNASSIGNED`] when any.
pub fn label_counts(rows: &[CellRow], labels: &[String], threshold: f32) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for r in rows {
        *counts
            .entry(call(&r.probabilities, labels, threshold))
            .or_default() += 1;
    }
    let mut v: Vec<(String, usize)> = counts
        .into_iter()
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV of every cell in index order: `index,cell,label,argmax_label,confidence,p_<label>...`.
/// `label` honours the threshold; `argmax_label` does not. Probabilities use the shortest
/// representation that reads back to the same f32.
pub fn to_csv(rows: &[CellRow], labels: &[String], threshold: f32) -> String {
    let mut sorted: Vec<&CellRow> = rows.iter().collect();
    sorted.sort_by_key(|r| r.index);
    let mut out = String::from("index,cell,label,argmax_label,confidence");
    for l in labels {
        out.push(',');
        out.push_str(&field(&format!("p_{l}")));
    }
    out.push('\n');
    for r in sorted {
        let (i, v) = argmax(&r.probabilities);
        let best = labels.get(i).map(String::as_str).unwrap_or("");
        out.push_str(&format!(
            "{},{},{},{},{v}",
            r.index,
            field(&r.name),
            field(call(&r.probabilities, labels, threshold)),
            field(best)
        ));
        for p in &r.probabilities {
            out.push_str(&format!(",{p}"));
        }
        out.push('\n');
    }
    out
}

/// A run in numbers that need no true labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Cells classified (after quality control).
    pub n_cells: usize,
    /// Of those, cells whose best probability reaches the threshold.
    pub n_assigned: usize,
    /// Mean best probability.
    pub mean_confidence: f64,
}

/// [`Summary`] of `rows` at `threshold`.
pub fn summarize(rows: &[CellRow], threshold: f32) -> Summary {
    let best: Vec<f32> = rows.iter().map(|r| argmax(&r.probabilities).1).collect();
    Summary {
        n_cells: rows.len(),
        n_assigned: best.iter().filter(|&&v| v >= threshold).count(),
        mean_confidence: if best.is_empty() {
            0.0
        } else {
            best.iter().map(|&v| f64::from(v)).sum::<f64>() / best.len() as f64
        },
    }
}

/// How the arg-max calls agree with a label column of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// Cells compared (those with a value in the column).
    pub n: usize,
    /// Fraction whose arg-max label equals the column's value.
    pub accuracy: f64,
    /// Unweighted mean F1 over the labels that occur in the column or the calls (sklearn's
    /// `f1_score(average="macro")`, the fine-tune's definition).
    pub macro_f1: f64,
    /// Distinct values of the column among the compared cells.
    pub truth_classes: usize,
    /// Of those, how many are among the model's labels (others can never be called).
    pub known_classes: usize,
}

/// [`Agreement`] of the arg-max calls with `truth` (indexed by [`CellRow::index`]; empty
/// strings are missing values). `None` when no cell has a value.
pub fn agreement(rows: &[CellRow], labels: &[String], truth: &[String]) -> Option<Agreement> {
    let pairs: Vec<(&str, &str)> = rows
        .iter()
        .filter_map(|r| {
            let t = truth.get(r.index).filter(|t| !t.is_empty())?;
            let p = labels
                .get(argmax(&r.probabilities).0)
                .map_or("", String::as_str);
            Some((t.as_str(), p))
        })
        .collect();
    if pairs.is_empty() {
        return None;
    }
    // Per label: [true positives, times true, times predicted].
    let mut per: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for &(t, p) in &pairs {
        per.entry(t).or_default()[1] += 1;
        per.entry(p).or_default()[2] += 1;
        if t == p {
            per.entry(t).or_default()[0] += 1;
        }
    }
    let correct: usize = per.values().map(|c| c[0]).sum();
    let f1_sum: f64 = per
        .values()
        .map(|&[tp, support, predicted]| {
            if tp == 0 {
                0.0
            } else {
                2.0 * tp as f64 / (support + predicted) as f64
            }
        })
        .sum();
    let truth_set: BTreeSet<&str> = pairs.iter().map(|p| p.0).collect();
    let known = truth_set
        .iter()
        .filter(|t| labels.iter().any(|l| l == *t))
        .count();
    Some(Agreement {
        n: pairs.len(),
        accuracy: correct as f64 / pairs.len() as f64,
        macro_f1: f1_sum / per.len() as f64,
        truth_classes: truth_set.len(),
        known_classes: known,
    })
}

/// The rows saved to the registry for task `cell_type_annotation`: `(metric, value)`.
pub fn result_metrics(
    summary: &Summary,
    threshold: f32,
    agreement: Option<&Agreement>,
) -> Vec<(&'static str, f64)> {
    let mut m = vec![
        ("n_cells", summary.n_cells as f64),
        ("n_assigned", summary.n_assigned as f64),
        ("confidence_threshold", f64::from(threshold)),
        ("mean_confidence", summary.mean_confidence),
    ];
    if let Some(a) = agreement {
        m.push(("accuracy", a.accuracy));
        m.push(("macro_f1", a.macro_f1));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> (Vec<CellRow>, Vec<String>) {
        let labels = vec!["alpha".to_string(), "beta, dup".to_string()];
        let rows = vec![
            CellRow {
                index: 1,
                row: 3,
                name: "c\"1".into(),
                probabilities: vec![0.45, 0.55],
            },
            CellRow {
                index: 0,
                row: 0,
                name: "c0".into(),
                probabilities: vec![0.9, 0.1],
            },
        ];
        (rows, labels)
    }

    #[test]
    fn threshold_marks_low_confidence_cells_unassigned() {
        let (rows, labels) = rows();
        assert_eq!(call(&rows[0].probabilities, &labels, 0.5), "beta, dup");
        assert_eq!(call(&rows[0].probabilities, &labels, 0.6), UNASSIGNED);
        assert_eq!(
            label_counts(&rows, &labels, 0.6),
            vec![("alpha".into(), 1), (UNASSIGNED.into(), 1)]
        );
        assert_eq!(argmax(&[0.5, 0.5]), (0, 0.5), "first on ties");
    }

    #[test]
    fn csv_is_in_index_order_and_quoted() {
        let (rows, labels) = rows();
        let csv = to_csv(&rows, &labels, 0.6);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "index,cell,label,argmax_label,confidence,p_alpha,\"p_beta, dup\""
        );
        assert_eq!(lines[1], "0,c0,alpha,alpha,0.9,0.9,0.1");
        assert_eq!(
            lines[2],
            "1,\"c\"\"1\",unassigned,\"beta, dup\",0.55,0.45,0.55"
        );
    }

    #[test]
    fn summary_counts_cells_at_the_threshold() {
        let (rows, _) = rows();
        let s = summarize(&rows, 0.6);
        assert_eq!((s.n_cells, s.n_assigned), (2, 1));
        assert!((s.mean_confidence - 0.725).abs() < 1e-6, "{s:?}");
        assert_eq!(summarize(&rows, 0.0).n_assigned, 2);
        assert_eq!(summarize(&[], 0.5).mean_confidence, 0.0);
        let m = result_metrics(&s, 0.6, None);
        let names: Vec<_> = m.iter().map(|p| p.0).collect();
        assert_eq!(
            names,
            [
                "n_cells",
                "n_assigned",
                "confidence_threshold",
                "mean_confidence"
            ]
        );
        assert!((m[2].1 - 0.6).abs() < 1e-6);
    }

    fn cell(index: usize, p: &[f32]) -> CellRow {
        CellRow {
            index,
            row: index,
            name: format!("c{index}"),
            probabilities: p.to_vec(),
        }
    }

    #[test]
    fn agreement_is_sklearn_accuracy_and_macro_f1() {
        // truth a a b b c, predicted a a b c b (the trainer's sklearn case): accuracy 0.6,
        // macro F1 (1 + 0.5 + 0) / 3.
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let rows = vec![
            cell(0, &[0.9, 0.05, 0.05]),
            cell(1, &[0.8, 0.1, 0.1]),
            cell(2, &[0.1, 0.8, 0.1]),
            cell(3, &[0.1, 0.1, 0.8]),
            cell(4, &[0.1, 0.8, 0.1]),
            // No true label: left out.
            cell(5, &[0.1, 0.8, 0.1]),
        ];
        let truth: Vec<String> = ["a", "a", "b", "b", "c", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = agreement(&rows, &labels, &truth).expect("compared");
        assert_eq!(a.n, 5);
        assert!((a.accuracy - 0.6).abs() < 1e-12, "{a:?}");
        assert!((a.macro_f1 - 0.5).abs() < 1e-12, "{a:?}");
        assert_eq!((a.truth_classes, a.known_classes), (3, 3));
        let m = result_metrics(&summarize(&rows, 0.0), 0.0, Some(&a));
        assert_eq!(m[4], ("accuracy", a.accuracy));
        assert_eq!(m[5], ("macro_f1", a.macro_f1));
    }

    #[test]
    fn agreement_counts_labels_the_model_does_not_know() {
        // Truth names a class the model lacks: it counts in macro F1 with F1 0, like sklearn.
        let labels: Vec<String> = vec!["alpha".into(), "beta".into()];
        let rows = vec![cell(0, &[0.9, 0.1]), cell(1, &[0.2, 0.8])];
        let truth = vec!["alpha".to_string(), "delta".to_string()];
        let a = agreement(&rows, &labels, &truth).unwrap();
        assert_eq!(a.accuracy, 0.5);
        // alpha F1 1, delta 0 (never predicted), beta 0 (predicted, never true).
        assert!((a.macro_f1 - 1.0 / 3.0).abs() < 1e-12, "{a:?}");
        assert_eq!((a.truth_classes, a.known_classes), (2, 1));
        assert_eq!(agreement(&rows, &labels, &[]), None);
    }
}
