//! The first rows of the results (the CSV has them all): a page of thousands of table rows
//! would make every threshold change slow.

use leptos::prelude::*;

use crate::protocol::CellRow;
use crate::results::{argmax, call};

/// Rows shown on the page.
pub const SHOWN: usize = 200;

/// Cells in index order with their call and confidence.
#[component]
pub fn ResultsTable(
    #[prop(into)] rows: Signal<Vec<CellRow>>,
    #[prop(into)] labels: Signal<Vec<String>>,
    #[prop(into)] threshold: Signal<f32>,
) -> impl IntoView {
    let body = move || {
        let labels = labels.get();
        let t = threshold.get();
        rows.with(|rows| {
            let mut shown: Vec<&CellRow> = rows.iter().collect();
            shown.sort_by_key(|r| r.index);
            shown
                .into_iter()
                .take(SHOWN)
                .map(|r| {
                    let (_, conf) = argmax(&r.probabilities);
                    let label = call(&r.probabilities, &labels, t).to_string();
                    let class = if label == crate::results::UNASSIGNED {
                        "unassigned"
                    } else {
                        ""
                    };
                    view! {
                        <tr class=class>
                            <td>{r.index}</td>
                            <td>{r.name.clone()}</td>
                            <td class="label">{label}</td>
                            <td>{format!("{conf:.3}")}</td>
                        </tr>
                    }
                })
                .collect_view()
        })
    };
    let note = move || {
        let n = rows.with(Vec::len);
        (n > SHOWN).then(|| format!("Showing the first {SHOWN} of {n} cells; the CSV has all."))
    };
    view! {
        <table id="results-table">
            <thead>
                <tr><th>"#"</th><th>"Cell"</th><th>"Predicted label"</th><th>"Confidence"</th></tr>
            </thead>
            <tbody>{body}</tbody>
        </table>
        <p class="note">{note}</p>
    }
}
