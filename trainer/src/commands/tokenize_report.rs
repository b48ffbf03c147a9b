//! What `tokenize` (and `classify`, `finetune` on raw files) print about a file: how its
//! species was decided, how its genes matched the vocabulary, what QC kept; and the errors
//! that say what to do when nothing can be tokenized.

use std::path::Path;

use anyhow::bail;
use genecompass_core::data::{GeneColumns, MatrixChoice};
use genecompass_core::tokenize::{
    GeneMatchReport, SpeciesEvidence, TokenizeError, TokenizeSummary,
};

/// Adds what to do to a tokenizer error (non-count matrix, missing column). `matrix` is the
/// matrix choice the file was opened with: the automatic one has already looked for raw counts
/// in every matrix of the file, so it is no use suggesting another.
pub fn explain(e: TokenizeError, input: &Path, matrix: &MatrixChoice) -> anyhow::Error {
    match e {
        TokenizeError::NotCounts(msg) => {
            let what = if *matrix == MatrixChoice::Auto {
                "no matrix of this file holds raw counts (an h5ad's `X`, `raw/X` and layers were all                  looked at; the warnings above say what each holds): get the raw count matrix of this                  data set (e.g. from its GEO / Cell Ranger output)"
            } else {
                "pass --matrix auto to take the file's first raw-count matrix, or name another one                  (--matrix X, raw or layer:NAME, e.g. layer:counts); if the file has none, get the raw                  count matrix of this data set (e.g. from its GEO / Cell Ranger output)"
            };
            anyhow::anyhow!(
                "{msg}\nWhat to do: {what}. Normalised or scaled values cannot be ranked the \
                 GeneCompass way. (input: {})",
                input.display()
            )
        }
        other => anyhow::Error::new(other).context(format!("tokenizing {}", input.display())),
    }
}

fn species_how(e: &SpeciesEvidence) -> String {
    match e {
        SpeciesEvidence::Override => "given with --species".into(),
        SpeciesEvidence::EnsemblPrefix { human, mouse } => {
            format!("Ensembl id prefixes: {human} ENSG vs {mouse} ENSMUSG")
        }
        SpeciesEvidence::SymbolTables { human, mouse } => {
            format!("symbol tables: {human} current HGNC vs {mouse} current MGI symbols")
        }
    }
}

/// Prints the gene-matching part of the report (before any pass over the cells).
pub fn print_match(r: &GeneMatchReport, vocab_len: usize) {
    println!(
        "species:          {} ({})",
        r.species.name(),
        species_how(&r.species_evidence)
    );
    println!("gene identifiers: {}", r.identifier);
    let by: Vec<String> = r
        .mapped_by
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "genes -> Ensembl: {} of {} ({})",
        r.mapped_to_ensembl,
        r.genes_in_file,
        by.join(", ")
    );
    println!(
        "genes in vocab:   {} of {} ({:.1} %; vocabulary of {vocab_len} tokens)",
        r.matched_to_vocabulary,
        r.genes_in_file,
        100.0 * r.matched_to_vocabulary as f64 / r.genes_in_file.max(1) as f64
    );
    if !r.ambiguous.is_empty() {
        let first: Vec<&str> = r.ambiguous.iter().take(5).map(|a| a.0.as_str()).collect();
        println!(
            "ambiguous:        {} symbols name several genes and were dropped (e.g. {})",
            r.ambiguous.len(),
            first.join(", ")
        );
    }
    if r.duplicate_tokens > 0 {
        println!(
            "duplicates:       {} columns map to a gene already used by another column (both kept, as officially)",
            r.duplicate_tokens
        );
    }
}

/// Refuses a file none of whose genes is known, with what was seen.
pub fn check_known_genes(
    r: &GeneMatchReport,
    genes: &GeneColumns,
    vocab_desc: &str,
) -> anyhow::Result<()> {
    if r.matched_to_vocabulary > 0 {
        return Ok(());
    }
    let first: Vec<&str> = genes.names.iter().take(5).map(String::as_str).collect();
    bail!(
        "no known genes: none of the {} genes ({} {}; first names {:?}) matched {vocab_desc}. \
         Check that the gene names are HGNC/MGI symbols or Ensembl ids (a 10x/h5ad file may keep them in \
         another column), that --species is right, and that the token dictionary is for this species",
        r.genes_in_file,
        r.mapped_to_ensembl,
        "mapped to Ensembl ids",
        first
    )
}

/// Prints the share of the counts on vocabulary genes and the unmatched genes with the most
/// counts: known after the first pass over the cells, and printed then, before any token is
/// written, so that a run on the wrong gene column or dictionary can be stopped early.
pub fn print_coverage(s: &TokenizeSummary) {
    let g = &s.genes;
    println!(
        "count share:      {:.2} % of {} counts are on vocabulary genes",
        100.0 * g.matched_count_share,
        g.total_counts
    );
    if !g.top_unmatched.is_empty() {
        let top: Vec<String> = g
            .top_unmatched
            .iter()
            .take(10)
            .map(|(n, c)| format!("{n} ({c})"))
            .collect();
        println!("top unmatched:    {}", top.join(", "));
    }
}

/// Prints what QC kept and what was written.
pub fn print_summary(s: &TokenizeSummary, secs: f64) {
    let q = &s.qc;
    println!("summary:");
    println!("  cells in:                  {}", q.cells_in);
    println!("  kept, total counts > 0:    {}", q.after_nonzero_total);
    println!("  kept, QC z-scores in (-3,3): {}", q.after_zscore);
    println!("  kept, > 6 expressed genes: {}", q.after_min_genes);
    println!("  dropped, no vocab gene:    {}", s.cells_empty);
    println!(
        "  written:                   {} ({} truncated to the top genes)",
        s.cells_out, s.cells_truncated
    );
    println!(
        "  genes used:                {} ({} without a median, divided by 1)",
        s.genes_used, s.genes_without_median
    );
    if s.min_genes_counted_all {
        println!(
            "  note: no gene had a protein-coding/miRNA biotype; the > 6 genes rule counted all genes"
        );
    }
    println!(
        "  time:                      {secs:.2} s ({:.0} cells/s)",
        q.cells_in as f64 / secs.max(1e-9)
    );
}
