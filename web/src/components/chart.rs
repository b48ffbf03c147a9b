//! Horizontal bar chart of cells per call, drawn as SVG (no chart library: a few rects).

use leptos::prelude::*;

const ROW: f64 = 22.0;
const LABEL_W: f64 = 170.0;
const BAR_W: f64 = 360.0;

/// Bars for `(label, count)` pairs, in the given order.
#[component]
pub fn LabelChart(#[prop(into)] counts: Signal<Vec<(String, usize)>>) -> impl IntoView {
    let height = move || (counts.with(Vec::len) as f64 * ROW + 4.0).to_string();
    let bars = move || {
        let c = counts.get();
        let max = c.iter().map(|x| x.1).max().unwrap_or(1).max(1) as f64;
        c.into_iter()
            .enumerate()
            .map(|(i, (label, n))| {
                let y = i as f64 * ROW;
                let w = (n as f64 / max * BAR_W).max(1.0);
                let class = if label == crate::results::UNASSIGNED {
                    "bar unassigned"
                } else {
                    "bar"
                };
                let data_label = label.clone();
                view! {
                    <g class="chart-row" data-label=data_label data-count=n>
                        <text x=LABEL_W - 6.0 y=y + 15.0 text-anchor="end">{label}</text>
                        <rect class=class x=LABEL_W y=y + 3.0 width=w height=ROW - 6.0></rect>
                        <text x=LABEL_W + w + 4.0 y=y + 15.0>{n}</text>
                    </g>
                }
            })
            .collect_view()
    };
    view! {
        <svg id="label-chart" class="chart" width=LABEL_W + BAR_W + 60.0 height=height
            role="img" aria-label="cells per predicted label">
            {bars}
        </svg>
    }
}
