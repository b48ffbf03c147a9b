//! What was read from the file and what tokenization kept, as definition lists.

use leptos::prelude::*;

use crate::protocol::{FileReport, QcReport};

fn pct(a: usize, b: usize) -> String {
    format!("{:.1} %", 100.0 * a as f64 / b.max(1) as f64)
}

/// The file report (before tokenization).
#[component]
pub fn FileReportView(report: FileReport) -> impl IntoView {
    let r = report;
    let counts = if r.raw_counts {
        "yes".to_string()
    } else {
        format!("no: {}", r.values)
    };
    let warnings = r.warnings.clone();
    view! {
        <dl id="file-report" class="report">
            <dt>"File"</dt><dd>{r.file.clone()}</dd>
            <dt>"Format"</dt><dd>{format!("{} (matrix {})", r.format, r.matrix)}</dd>
            <dt>"Cells"</dt><dd id="report-cells">{r.n_cells}</dd>
            <dt>"Genes"</dt><dd>{r.n_genes}</dd>
            <dt>"Species"</dt><dd id="report-species">{format!("{} ({})", r.species, r.species_how)}</dd>
            <dt>"Gene ids"</dt>
            <dd>{format!("{}; {} of {} mapped to Ensembl", r.identifier, r.mapped_to_ensembl, r.n_genes)}</dd>
            <dt>"Vocabulary coverage"</dt>
            <dd id="report-coverage">
                {format!(
                    "{} of {} genes ({}) are in the model's {} tokens",
                    r.in_vocab, r.n_genes, pct(r.in_vocab, r.n_genes), r.vocab_len
                )}
            </dd>
            <dt>"Raw counts"</dt><dd id="report-counts">{counts}</dd>
        </dl>
        <ul class="warnings">
            {warnings.into_iter().map(|w| view! { <li>{w}</li> }).collect_view()}
        </ul>
    }
}

/// The tokenization summary.
#[component]
pub fn QcReportView(qc: QcReport) -> impl IntoView {
    let q = qc;
    let medians = if q.medians {
        format!(
            "{} genes without a median (divided by 1)",
            q.genes_without_median
        )
    } else {
        "none came with the model: every gene divided by 1".to_string()
    };
    let top: Vec<String> = q
        .top_unmatched
        .iter()
        .map(|(n, c)| format!("{n} ({c})"))
        .collect();
    view! {
        <dl id="qc-report" class="report">
            <dt>"Cells kept"</dt>
            <dd id="qc-kept">
                {format!(
                    "{} of {} ({} without a vocabulary gene, {} truncated)",
                    q.cells_kept, q.cells_in, q.cells_empty, q.cells_truncated
                )}
            </dd>
            <dt>"Counts on vocabulary genes"</dt>
            <dd>{format!("{:.2} % ({} genes used)", 100.0 * q.count_share, q.genes_used)}</dd>
            <dt>"Medians"</dt><dd>{medians}</dd>
            <dt>"Top unmatched genes"</dt><dd>{top.join(", ")}</dd>
        </dl>
    }
}
