//! Hand-computed checks of each tokenizer step, gene identity and vocabulary handling.

use genecompass_core::cells::Species;
use genecompass_core::data::{
    CellSource, CellTable, CsrChunk, DataError, GeneColumns, MatrixInfo, ObsColumn,
};
use genecompass_core::tokenize::genes::parse_ensembl;
use genecompass_core::tokenize::pipeline::compute_medians;
use genecompass_core::tokenize::qc::{CellStats, ZeroVariance, select_cells, zscores};
use genecompass_core::tokenize::transform::{GeneValue, log2_1p, median_divide, rank_cell};
use genecompass_core::tokenize::*;

mod common;

/// A dense in-memory source (test only).
struct Dense {
    info: MatrixInfo,
    genes: GeneColumns,
    cells: CellTable,
    rows: Vec<Vec<f32>>,
    pos: usize,
}

impl Dense {
    fn new(names: &[&str], rows: Vec<Vec<f32>>) -> Self {
        Dense {
            info: MatrixInfo {
                format: "test".into(),
                matrix_path: "X".into(),
                n_cells: rows.len(),
                n_genes: names.len(),
            },
            genes: GeneColumns {
                names: names.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            cells: CellTable {
                names: (0..rows.len()).map(|i| format!("c{i}")).collect(),
                columns: vec![],
            },
            rows,
            pos: 0,
        }
    }
}

impl CellSource for Dense {
    fn info(&self) -> &MatrixInfo {
        &self.info
    }
    fn genes(&self) -> &GeneColumns {
        &self.genes
    }
    fn cells(&self) -> &CellTable {
        &self.cells
    }
    fn next_chunk(&mut self, max_cells: usize) -> Result<Option<CsrChunk>, DataError> {
        if self.pos >= self.rows.len() {
            return Ok(None);
        }
        let end = (self.pos + max_cells).min(self.rows.len());
        let mut c = CsrChunk {
            first_cell: self.pos,
            indptr: vec![0],
            ..Default::default()
        };
        for r in &self.rows[self.pos..end] {
            for (j, &v) in r.iter().enumerate() {
                if v != 0.0 {
                    c.indices.push(j as u32);
                    c.data.push(v);
                }
            }
            c.indptr.push(c.indices.len());
        }
        self.pos = end;
        Ok(Some(c))
    }
    fn rewind(&mut self) -> Result<(), DataError> {
        self.pos = 0;
        Ok(())
    }
}

#[test]
fn zscore_filter_by_hand() {
    // totals 10,10,10,10,10,10,10,10,10,100: mean 19, sd = sqrt((9*81 + 6561)/10) = 27 -> z(100) = 3.0,
    // which is NOT strictly inside (-3, 3): dropped; the others have z = -1/3.
    let mut stats: Vec<CellStats> = (0..9)
        .map(|_| CellStats {
            total: 10.0,
            mito: 1.0,
            n_counted: 7,
        })
        .collect();
    stats.push(CellStats {
        total: 100.0,
        mito: 10.0,
        n_counted: 7,
    });
    stats.push(CellStats {
        total: 0.0,
        mito: 0.0,
        n_counted: 0,
    }); // empty cell
    let z = zscores(&stats[..10].iter().map(|s| s.total).collect::<Vec<_>>());
    assert!((z[9].unwrap() - 3.0).abs() < 1e-12 && (z[0].unwrap() + 1.0 / 3.0).abs() < 1e-12);
    let (keep, c) = select_cells(
        &stats,
        None,
        &CellQcOptions::default(),
        &GeneCountFilter::default(),
    );
    assert_eq!(keep, [vec![true; 9], vec![false, false]].concat());
    assert_eq!(
        (
            c.cells_in,
            c.after_nonzero_total,
            c.after_zscore,
            c.after_min_genes
        ),
        (11, 10, 9, 9)
    );
    // Within samples: the big cell alone in its own sample has zero spread -> kept (default) or
    // dropped (scipy NaN behaviour).
    let samples: Vec<String> = (0..11)
        .map(|i| if i == 9 { "b".into() } else { "a".into() })
        .collect();
    let (keep, _) = select_cells(
        &stats,
        Some(&samples),
        &CellQcOptions::default(),
        &GeneCountFilter::default(),
    );
    assert_eq!(keep.iter().filter(|&&k| k).count(), 10);
    let scipy = CellQcOptions {
        zero_variance: ZeroVariance::DropLikeScipy,
        ..Default::default()
    };
    let (keep, _) = select_cells(&stats, Some(&samples), &scipy, &GeneCountFilter::default());
    assert_eq!(
        keep.iter().filter(|&&k| k).count(),
        0,
        "mito fraction 0.1 everywhere: sd 0 -> NaN -> all dropped"
    );
    // Expressed-gene filter: > 6 strictly.
    stats[0].n_counted = 6;
    let (keep, c) = select_cells(
        &stats,
        None,
        &CellQcOptions::default(),
        &GeneCountFilter::default(),
    );
    assert!(!keep[0] && keep[1]);
    assert_eq!(c.after_min_genes, 8);
}

#[test]
fn median_division_and_log2() {
    assert_eq!(median_divide(6.0, 1.5), 4.0);
    assert_eq!(
        median_divide(3.0, f64::NAN),
        0.0,
        "NaN median -> 0 (np.nan_to_num)"
    );
    assert_eq!(median_divide(3.0, 0.0), f64::MAX);
    assert_eq!(log2_1p(3.0), 2.0);
    assert_eq!(log2_1p(0.0), 0.0);
    assert!((log2_1p(1.0) - 1.0).abs() < 1e-15);
}

fn gv(column: u32, token: u32, count: f64, median: f64) -> GeneValue {
    GeneValue {
        column,
        token,
        count,
        median,
    }
}

#[test]
fn ranking_ties_and_truncation() {
    // values: t9: log2(1+8/2)=log2 5; t4: log2(1+3)=2; t7: log2(1+3/1)=2 (tie with t4); t5: log2(1+1)=1;
    // t6: NaN median -> 0 -> dropped.
    let genes = [
        gv(0, 7, 3.0, 1.0),
        gv(1, 9, 8.0, 2.0),
        gv(2, 4, 6.0, 2.0),
        gv(3, 5, 1.0, 1.0),
        gv(4, 6, 5.0, f64::NAN),
    ];
    let (ids, vals) = rank_cell(&genes, None, TieBreak::TokenId, None);
    assert_eq!(ids, vec![9, 4, 7, 5]);
    assert_eq!(vals, vec![5f64.log2() as f32, 2.0, 2.0, 1.0]);
    let (ids, _) = rank_cell(&genes, None, TieBreak::ColumnOrder, None);
    assert_eq!(ids, vec![9, 7, 4, 5]);
    let (ids, vals) = rank_cell(&genes, None, TieBreak::TokenId, Some(2));
    assert_eq!((ids, vals.len()), (vec![9, 4], 2));
    // normalize_total: counts 3,8,6,1,5 sum 23 -> scale 10/23 over all given genes.
    let (ids, vals) = rank_cell(&genes, Some(10.0), TieBreak::TokenId, None);
    assert_eq!(ids, vec![9, 4, 7, 5]);
    assert!((vals[0] as f64 - (1.0f64 + 8.0 * 10.0 / 23.0 / 2.0).log2()).abs() < 1e-6);
}

#[test]
fn ensembl_parsing_and_symbol_tables() {
    assert_eq!(
        parse_ensembl("ENSG00000141510.17"),
        Some(("ENSG00000141510", Species::Human))
    );
    assert_eq!(
        parse_ensembl("ENSMUSG00000059552"),
        Some(("ENSMUSG00000059552", Species::Mouse))
    );
    assert_eq!(parse_ensembl("ENSRNOG00000000001"), None);
    assert_eq!(parse_ensembl("TP53"), None);
    let h = GeneTable::embedded(Species::Human);
    let m = GeneTable::embedded(Species::Mouse);
    assert!(h.len() > 40_000 && m.len() > 70_000);
    // Matching looks an Ensembl id up only in the table its prefix names.
    assert!(
        h.records()
            .all(|r| parse_ensembl(r.ensembl_id).map(|p| p.1) == Some(Species::Human))
    );
    assert!(
        m.records()
            .all(|r| parse_ensembl(r.ensembl_id).map(|p| p.1) == Some(Species::Mouse))
    );
    assert_eq!(h.by_ensembl("ENSG00000141510").unwrap().symbol, "TP53");
    assert_eq!(
        h.by_ensembl("ENSG00000141510").unwrap().biotype,
        "protein_coding"
    );
    use genecompass_core::tokenize::gene_tables::{SymbolHit, SymbolRule};
    // NCRNA00181 is a previous symbol of A1BG-AS1.
    match h.resolve_symbol("NCRNA00181") {
        SymbolHit::Found(i, SymbolRule::Previous) => assert_eq!(h.record(i).symbol, "A1BG-AS1"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        m.resolve_symbol("Gapdh"),
        SymbolHit::Found(_, SymbolRule::Current)
    ));
    let o = Orthologs::embedded();
    assert_eq!(
        o.counterpart("ENSMUSG00000059552"),
        Some("ENSG00000141510"),
        "Trp53 -> TP53"
    );
    assert_eq!(o.counterpart("ENSG00000141510"), Some("ENSMUSG00000059552"));
}

#[test]
fn ambiguous_alias_is_reported_not_guessed() {
    // Find an alias shared by two human genes in the embedded table.
    let h = GeneTable::embedded(Species::Human);
    let mut seen = std::collections::HashMap::new();
    let alias = h
        .records()
        .flat_map(|r| r.aliases().map(move |a| (a, r.ensembl_id)))
        .find(|(a, e)| {
            !h.has_symbol(a)
                && h.records().all(|r| r.previous().all(|p| p != *a))
                && seen
                    .insert(a.to_string(), e.to_string())
                    .is_some_and(|prev| prev != *e)
        })
        .map(|(a, _)| a.to_string())
        .unwrap();
    let vocab = TokenDictionary::build(h.records().map(|r| r.ensembl_id.to_string()));
    let genes = genecompass_core::data::GeneColumns {
        names: vec![
            "TP53".into(),
            alias.clone(),
            "GAPDH".into(),
            "NOT_A_GENE".into(),
        ],
        ..Default::default()
    };
    let gm = match_genes(&genes, &vocab, &GeneMatchOptions::default()).unwrap();
    assert_eq!(gm.species, Species::Human);
    assert!(matches!(
        gm.report.species_evidence,
        SpeciesEvidence::SymbolTables { human: 2, mouse: 0 }
    ));
    assert_eq!(gm.ensembl[0].as_deref(), Some("ENSG00000141510"));
    assert_eq!(gm.ensembl[1], None);
    assert_eq!(gm.report.ambiguous.len(), 1);
    assert_eq!(gm.report.ambiguous[0].0, alias);
    assert!(gm.report.ambiguous[0].1.len() >= 2);
    assert_eq!(gm.report.matched_to_vocabulary, 2);
}

#[test]
fn species_detection() {
    let vocab = TokenDictionary::build(vec!["ENSMUSG00000057666".to_string()]);
    let cols = |names: &[&str]| GeneColumns {
        names: names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let gm = match_genes(
        &cols(&["Gapdh", "Actb", "Trp53"]),
        &vocab,
        &GeneMatchOptions::default(),
    )
    .unwrap();
    assert_eq!(gm.species, Species::Mouse);
    assert_eq!(gm.tokens[0], Some(2));
    let gm = match_genes(
        &cols(&["ENSMUSG00000057666.3", "ENSG00000141510"]),
        &vocab,
        &GeneMatchOptions::default(),
    );
    // tie 1:1 -> human by default; override wins.
    assert_eq!(gm.unwrap().species, Species::Human);
    let opts = GeneMatchOptions {
        species: Some(Species::Mouse),
        ..Default::default()
    };
    let gm = match_genes(
        &cols(&["ENSMUSG00000057666.3", "ENSG00000141510"]),
        &vocab,
        &opts,
    )
    .unwrap();
    assert_eq!(
        (gm.species, gm.report.species_evidence.clone()),
        (Species::Mouse, SpeciesEvidence::Override)
    );
    assert_eq!(gm.tokens[0], Some(2), "version suffix stripped");
    // Symbols and Ensembl ids in a second column: ids are used, file symbols kept.
    let mut g = cols(&["Gapdh", "mt-Nd1"]);
    g.ids = Some(vec![
        "ENSMUSG00000057666".into(),
        "ENSMUSG00000064341".into(),
    ]);
    let gm = match_genes(&g, &vocab, &GeneMatchOptions::default()).unwrap();
    assert_eq!(gm.report.identifier, "ensembl (ids column)");
    assert_eq!(gm.symbols[1].as_deref(), Some("mt-Nd1"));
    // Unknown names: actionable error.
    let err =
        match_genes(&cols(&["foo", "bar"]), &vocab, &GeneMatchOptions::default()).unwrap_err();
    assert!(err.to_string().contains("--species"), "{err}");
}

/// A dictionary built from a file's own genes (`--build-vocab`) renumbers the first match
/// exactly as matching again would: real files named by mouse symbols, human symbols, both
/// species and Ensembl ids, with and without the ortholog fallback, and a name no table knows.
#[test]
fn renumbering_a_match_equals_matching_again() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/");
    for file in [
        "h5ad/baron_mouse_pancreas_822.h5ad",
        "h5ad/wu2020_tcells_200.h5ad",
        "h5ad/cider_pancreas_human_mouse_3donors.h5ad",
        "10x/3.0.0/filtered_feature_bc_matrix.h5",
    ] {
        let path = format!("{data}{file}");
        let src = genecompass_core::data::open_path(
            std::path::Path::new(&path),
            genecompass_core::data::MatrixChoice::Auto,
        )
        .expect("../shared/data beside the checkout");
        let mut genes = src.genes().clone();
        genes.names.push("NOT_A_GENE".into());
        if let Some(ids) = &mut genes.ids {
            ids.push("NOT_A_GENE".into());
        }
        for ortholog_fallback in [false, true] {
            let opts = GeneMatchOptions {
                ortholog_fallback,
                ..Default::default()
            };
            let first = match_genes(&genes, &EmbeddedGenes, &opts).unwrap();
            let vocab = TokenDictionary::build(
                first
                    .ensembl
                    .iter()
                    .zip(&first.tokens)
                    .filter(|(_, t)| t.is_some())
                    .filter_map(|(e, _)| e.clone()),
            );
            let again = match_genes(&genes, &vocab, &opts).unwrap();
            assert!(again.report.matched_to_vocabulary > 100, "{file}");
            assert_eq!(
                first.renumbered(&vocab),
                again,
                "{file}, fallback {ortholog_fallback}"
            );
        }
    }
}

/// Human genes used by the mini pipeline.
use common::HUMAN_GENES as G;

fn mini() -> (Dense, TokenDictionary, GeneMedians) {
    let mut names: Vec<&str> = G.iter().map(|g| g.0).collect();
    names.push("NOT_A_GENE");
    // Vocabulary: all but CD4, in reverse order (token ids differ from columns).
    let vocab = TokenDictionary::build(
        G.iter()
            .rev()
            .filter(|g| g.0 != "CD4")
            .map(|g| g.1.to_string()),
    );
    let mut medians = GeneMedians::default();
    medians.medians.insert("ENSG00000141510".into(), 2.0); // TP53
    medians.medians.insert("ENSG00000111640".into(), 4.0); // GAPDH
    medians.medians.insert("ENSG00000075624".into(), f64::NAN); // ACTB -> 0 -> dropped
    let row = |v: [f32; 9]| v.to_vec();
    let rows = vec![
        row([6., 12., 5., 3., 1., 1., 1., 1., 50.]), // ok
        row([2., 4., 1., 1., 1., 1., 1., 0., 0.]),   // ok
        row([0., 0., 0., 0., 0., 0., 0., 0., 9.]),   // total over mapped genes = 0 -> dropped
        row([1., 1., 1., 1., 1., 1., 0., 0., 0.]),   // 6 expressed protein-coding genes -> dropped
    ];
    (Dense::new(&names, rows), vocab, medians)
}

#[test]
fn mini_pipeline_by_hand() {
    let (mut src, vocab, medians) = mini();
    let (set, s) = tokenize(&mut src, &vocab, &medians, &TokenizeOptions::default()).unwrap();
    assert_eq!(
        (
            s.qc.cells_in,
            s.qc.after_nonzero_total,
            s.qc.after_zscore,
            s.qc.after_min_genes
        ),
        (4, 3, 3, 2)
    );
    assert_eq!(s.cells_out, 2);
    assert_eq!(s.genes.matched_to_vocabulary, 7);
    assert_eq!(s.genes.top_unmatched[0], ("NOT_A_GENE".to_string(), 59.0));
    assert!(
        (s.genes.matched_count_share - (106.0 - 59.0 - 2.0) / 106.0).abs() < 1e-12,
        "CD4 (2) and NOT_A_GENE (59) unmatched"
    );
    let id = |sym: &str| vocab.get(G.iter().find(|g| g.0 == sym).unwrap().1).unwrap();
    // Cell 0: TP53 6/2=3 -> 2; GAPDH 12/4=3 -> 2; MYC 3 -> 2; KRAS, PTEN, MT-ND1: 1 -> 1; ACTB NaN -> dropped.
    let c = &set.cells[0];
    let mut ties = vec![id("TP53"), id("GAPDH"), id("MYC")];
    ties.sort();
    let mut ones = vec![id("KRAS"), id("PTEN"), id("MT-ND1")];
    ones.sort();
    assert_eq!(c.input_ids, [ties, ones].concat());
    assert_eq!(c.values, vec![2.0, 2.0, 2.0, 1.0, 1.0, 1.0]);
    assert_eq!(c.species, Species::Human);
    // Cell 1: TP53 1 -> 1, GAPDH 1 -> 1, MYC, KRAS, PTEN 1 -> 1: five ties by token id.
    let mut all = vec![id("TP53"), id("GAPDH"), id("MYC"), id("KRAS"), id("PTEN")];
    all.sort();
    assert_eq!(set.cells[1].input_ids, all);
    assert_eq!(set.padded_len, Some(2048));
    assert_eq!(s.vocab_sha256, vocab.sha256());
}

#[test]
fn non_counts_are_refused() {
    let (mut src, vocab, medians) = mini();
    src.rows[1][0] = 2.5;
    let err = tokenize(&mut src, &vocab, &medians, &TokenizeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("raw counts")
            && err.contains("raw/X")
            && err.contains("cell 1")
            && err.contains("TP53"),
        "{err}"
    );
    src.rows[1][0] = -1.0;
    assert!(tokenize(&mut src, &vocab, &medians, &TokenizeOptions::default()).is_err());
}

#[test]
fn sample_and_label_columns() {
    let (mut src, vocab, medians) = mini();
    src.cells.columns.push((
        "lib".into(),
        ObsColumn::Text(vec!["a".into(), "b".into(), "a".into(), "b".into()]),
    ));
    src.cells
        .columns
        .push(("type".into(), ObsColumn::Number(vec![1.0, 2.0, 3.0, 4.0])));
    let opts = TokenizeOptions {
        qc: CellQcOptions {
            sample_column: Some("lib".into()),
            ..Default::default()
        },
        label_column: Some("type".into()),
        max_len: Some(3),
        ..Default::default()
    };
    let (set, s) = tokenize(&mut src, &vocab, &medians, &opts).unwrap();
    assert_eq!(
        set.cells
            .iter()
            .map(|c| c.label.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["1", "2"]
    );
    assert_eq!(s.cells_truncated, 2);
    assert!(set.cells.iter().all(|c| c.len() == 3));
    let bad = TokenizeOptions {
        label_column: Some("nope".into()),
        ..Default::default()
    };
    let err = tokenize(&mut src, &vocab, &medians, &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope") && err.contains("lib"), "{err}");
}

#[test]
fn medians_exact_and_histogram() {
    let (mut src, vocab, _) = mini();
    let opts = TokenizeOptions::default();
    let (m, qc) = compute_medians(&mut src, &vocab, &opts, None, MedianMode::Exact).unwrap();
    assert_eq!(qc.after_min_genes, 2);
    // Kept cells 0 and 1: TP53 {6, 2} -> 4; GAPDH {12, 4} -> 8; MT-ND1 {1} -> 1.
    assert_eq!(m.get("ENSG00000141510"), Some(4.0));
    assert_eq!(m.get("ENSG00000111640"), Some(8.0));
    assert_eq!(m.get("ENSG00000198888"), Some(1.0));
    assert_eq!(
        m.get("ENSG00000010610"),
        None,
        "CD4 is not in the vocabulary"
    );
    let (h, _) = compute_medians(
        &mut src,
        &vocab,
        &opts,
        None,
        MedianMode::Histogram {
            bins_per_octave: 64,
        },
    )
    .unwrap();
    for (k, v) in &m.medians {
        let rel = (h.get(k).unwrap() / v - 1.0).abs();
        assert!(rel <= 2f64.powf(1.0 / 128.0) - 1.0 + 1e-12, "{k}: {rel}");
    }
    // Normalised medians: cell 0 vocab counts sum 6+12+5+3+1+1+1 = 29 -> TP53 6*1e4/29.
    let (n, _) = compute_medians(&mut src, &vocab, &opts, Some(1e4), MedianMode::Exact).unwrap();
    let want = ((6.0f64 * 1e4 / 29.0) as f32 as f64 + (2.0f64 * 1e4 / 10.0) as f32 as f64) / 2.0;
    assert!((n.get("ENSG00000141510").unwrap() - want).abs() < 1e-9);
}

#[test]
fn accumulator_matches_numpy_median() {
    let mut a = MedianAccumulator::new(2, MedianMode::Exact);
    for v in [5.0, 0.0, 1.0, 3.0] {
        a.add(0, v);
    }
    assert_eq!(a.finish(), vec![Some(3.0), None]);
    let mut a = MedianAccumulator::new(1, MedianMode::Exact);
    for v in [5.0, 1.0, 3.0, 10.0] {
        a.add(0, v);
    }
    assert_eq!(a.finish(), vec![Some(4.0)]);
}

#[test]
fn vocabulary_validation_and_hash() {
    let v = TokenDictionary::from_json(br#"{"<pad>":0,"<mask>":1,"ENSG00000141510":2}"#, "t.json")
        .unwrap();
    assert_eq!(v.mask_id(), Some(1));
    assert_eq!(v.species_of(2), Some(Species::Human));
    assert_eq!(v, TokenDictionary::build(vec!["ENSG00000141510".into()]));
    let gap = TokenDictionary::from_json(br#"{"<pad>":0,"A":2}"#, "gap.json")
        .unwrap_err()
        .to_string();
    assert!(
        gap.contains("gap.json") && gap.contains("contiguous"),
        "{gap}"
    );
    let pad = TokenDictionary::from_json(br#"{"<pad>":1,"A":0}"#, "pad.json")
        .unwrap_err()
        .to_string();
    assert!(pad.contains("<pad>"), "{pad}");
    assert_ne!(
        v.sha256(),
        TokenDictionary::build(vec!["ENSG00000141511".into()]).sha256()
    );
    let h = HomologMap::from_orthologs(
        &TokenDictionary::build(vec!["ENSG00000141510".into(), "ENSMUSG00000059552".into()]),
        Orthologs::embedded(),
    );
    assert_eq!(h.pairs, vec![(2, 3)]);
}
