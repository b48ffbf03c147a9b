//! Turning probabilities into calls: arg-max, the "unassigned" threshold, label counts and the
//! CSV download. Pure functions, so the numbers the page shows are unit-tested.

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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> (Vec<CellRow>, Vec<String>) {
        let labels = vec!["alpha".to_string(), "beta, dup".to_string()];
        let rows = vec![
            CellRow {
                index: 1,
                name: "c\"1".into(),
                probabilities: vec![0.45, 0.55],
            },
            CellRow {
                index: 0,
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
}
