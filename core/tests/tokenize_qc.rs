//! The QC z-score filter on the mitochondrial fraction, end to end: a count table whose one
//! cell carries most of its counts on a mitochondrial gene loses that cell, and only it.

use genecompass_core::data::{TableOrientation, open_table_bytes};
use genecompass_core::tokenize::{
    CellQcOptions, GeneMedians, TokenDictionary, TokenizeOptions, tokenize,
};

mod common;
use common::HUMAN_GENES as GENES;

/// Twelve cells of 100 counts each: eleven with 1 % mitochondrial counts, the last with 91 %.
/// Totals are equal (zero spread: no cell is dropped for its total, by default); the fractions
/// are 0.01 × 11 and 0.91, so the outlier's z-score is √11 = 3.32 (a single outlier among n
/// values always scores √(n − 1)) and the others' −1/√11: only the outlier leaves (−3, 3).
fn table() -> String {
    let mut csv = String::from("cell");
    for (symbol, _) in GENES {
        csv.push_str(&format!(",{symbol}"));
    }
    csv.push('\n');
    for c in 0..12 {
        let counts = if c < 11 {
            [4, 40, 20, 10, 10, 10, 5, 1]
        } else {
            [1, 3, 1, 1, 1, 1, 1, 91]
        };
        csv.push_str(&format!("cell{c}"));
        for v in counts {
            csv.push_str(&format!(",{v}"));
        }
        csv.push('\n');
    }
    csv
}

#[test]
fn a_cell_with_an_outlying_mitochondrial_fraction_is_dropped() {
    let vocab = TokenDictionary::build(GENES.iter().map(|g| g.1.to_string()));
    let mt = vocab.get("ENSG00000198888").unwrap();
    let run = |opts: &TokenizeOptions| {
        let mut src = open_table_bytes(
            table().as_bytes(),
            "mito.csv",
            TableOrientation::CellsByGenes,
        )
        .unwrap();
        tokenize(&mut src, &vocab, &GeneMedians::default(), opts).unwrap()
    };
    let (cells, s) = run(&TokenizeOptions::default());
    let q = s.qc;
    assert_eq!(
        (
            q.cells_in,
            q.after_nonzero_total,
            q.after_zscore,
            q.after_min_genes
        ),
        (12, 12, 11, 11)
    );
    assert_eq!(cells.cells.len(), 11);
    // Every kept cell ranks GAPDH (40) first and MT-ND1 (1) last; the dropped cell would have
    // ranked MT-ND1 first.
    let gapdh = vocab.get("ENSG00000111640").unwrap();
    for c in &cells.cells {
        assert_eq!(c.input_ids.first(), Some(&gapdh));
        assert_eq!(c.input_ids.last(), Some(&mt));
        assert_eq!(c.values.last(), Some(&1.0), "log2(1 + 1)");
    }

    // Another prefix names no mitochondrial gene: every fraction is 0, none is dropped.
    let opts = TokenizeOptions {
        qc: CellQcOptions {
            mito_prefix: Some("MITO-".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let (cells, s) = run(&opts);
    assert_eq!(s.qc.after_zscore, 12);
    assert_eq!(
        cells.cells[11].input_ids.first(),
        Some(&mt),
        "91 counts rank first"
    );
    // Without the z-score filter the outlier stays too.
    let opts = TokenizeOptions {
        qc: CellQcOptions {
            zscore_filter: false,
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(run(&opts).1.qc.after_zscore, 12);
}
