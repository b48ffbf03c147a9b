//! The real h5ad files of shared/data/h5ad against README numbers.

use super::*;

const WU_CLUSTERS: &str = "4.4-FOS 25, 8.2-Tem 23, 8.1-Teff 22, 4.3-TCF7 22, 8.3a-Trm 21, 4.1-Trm 17, 4.2-RPL32 12, 8.3c-Trm 11, 4.5-IL6ST 10, 3.1-MT 9, 4.6a-Treg 9, 8.3b-Trm 7, 4.6b-Treg 5, 8.5-Mitosis 3, 8.6-KLRB1 3, 8.4-Chrom 1";

#[test]
fn wu2020_current_schema() {
    let mut s = h5ad("h5ad/wu2020_tcells_200.h5ad", MatrixChoice::Auto);
    assert_eq!((s.info().n_cells, s.info().n_genes), (200, 30727));
    assert_eq!(s.info().matrix_path, "X");
    assert!(s.info().format.contains("≥0.8"), "{}", s.info().format);
    let st = stats(&mut s, 37);
    assert_eq!(st.nnz, 198_277);
    assert_eq!(st.sum, 531_537.0);
    assert_eq!((st.min, st.max, st.integer), (0.0, 2120.0, true));
    expect_counts(&s, "cluster_orig", WU_CLUSTERS);
    expect_counts(&s, "source", "Tumor 95, NAT 85, Blood 20");
    expect_counts(
        &s,
        "patient",
        "Lung2 32, Lung6 22, Endo1 19, Lung3 18, Lung1 17, Endo2 17, Lung4 17, Renal2 15, Renal3 12, Endo3 10, Renal1 10, Lung5 6, Colon1 3, Colon2 2",
    );
    let ids = s.genes().ids.as_ref().unwrap();
    assert!(ids[0].starts_with("GeneID:"), "{}", ids[0]);
    assert_eq!(s.genes().names.len(), 30727);
    assert_eq!(s.matrices().len(), 1);
    assert_eq!(s.matrices()[0].kind, ValueKind::RawCounts);
    // From bytes (browser path) gives the same.
    let bytes = std::fs::read(shared("h5ad/wu2020_tcells_200.h5ad")).unwrap();
    let mut b = open_h5ad_bytes(bytes, "wu.h5ad", MatrixChoice::X).unwrap();
    let sb = stats(&mut b, 200);
    assert_eq!(sb.cell_sums, st.cell_sums);
}

#[test]
fn wu2020_old_schema_v0_6() {
    let mut s = h5ad(
        "h5ad/wu2020_tcells_200_old_schema_v0_6.h5ad",
        MatrixChoice::Auto,
    );
    assert_eq!((s.info().n_cells, s.info().n_genes), (200, 3000));
    assert!(s.info().format.contains("0.7-era"), "{}", s.info().format);
    let st = stats(&mut s, 64);
    assert_eq!((st.nnz, st.sum), (49_105, 170_426.0));
    assert_eq!((st.min, st.max, st.integer), (0.0, 2120.0, true));
    expect_counts(&s, "cluster_orig", WU_CLUSTERS);
    assert!(s.genes().ids.as_ref().unwrap()[0].starts_with("GeneID:"));
    assert!(matches!(
        s.cells().column("n_genes"),
        None | Some(ObsColumn::Number(_))
    ));
}

#[test]
fn spectra_log_normalised() {
    let mut s = h5ad("h5ad/spectra_immune_1000.h5ad", MatrixChoice::Auto);
    assert_eq!((s.info().n_cells, s.info().n_genes), (1000, 6397));
    let st = stats(&mut s, 128);
    assert_eq!(st.nnz, 666_173);
    assert!((st.sum - 913_979.814_8).abs() < 1.0, "{}", st.sum);
    assert!((st.max - 11.9697).abs() < 1e-3 && !st.integer);
    assert_eq!(s.matrices()[0].kind, ValueKind::NonIntegerNonNegative);
    assert!(
        s.warnings().iter().any(|w| w.contains("raw counts")),
        "{:?}",
        s.warnings()
    );
    expect_counts(
        &s,
        "cell_type_annotations",
        "CD8_T 324, CD4_T 264, MDC 143, Treg 70, B_memory 51, NK 37, plasma 32, B_naive 19, DC 19, gdT 12, pDC 10, mast 10, B_GC 7, ILC3 2",
    );
}

#[test]
fn pbmc68k_legacy_dense_and_raw() {
    let mut s = h5ad("h5ad/pbmc68k_reduced.h5ad", MatrixChoice::X);
    assert_eq!((s.info().n_cells, s.info().n_genes), (700, 765));
    assert!(s.info().format.contains("legacy"), "{}", s.info().format);
    assert_eq!(s.storage(), Storage::Dense);
    let st = stats(&mut s, 100);
    assert_eq!(st.nnz, 535_433);
    assert!((st.sum - -243.6811).abs() < 0.05, "{}", st.sum);
    assert!((st.min - -2.032).abs() < 1e-3 && (st.max - 28.408).abs() < 1e-3);
    expect_counts(
        &s,
        "bulk_labels",
        "Dendritic 240, CD14+ Monocyte 129, CD19+ B 95, CD4+/CD25 T Reg 68, CD8+ Cytotoxic T 54, CD8+/CD45RA+ Naive Cytotoxic 43, CD56+ NK 31, CD4+/CD45RO+ Memory 19, CD34+ 13, CD4+/CD45RA+/CD25- Naive T 8",
    );
    expect_counts(
        &s,
        "louvain",
        "0 130, 1 123, 2 117, 3 70, 4 66, 5 54, 6 42, 7 35, 8 31, 9 19, 10 13",
    );
    assert_eq!(
        s.genes().names[..2],
        ["HES4".to_string(), "TNFRSF4".to_string()]
    );
    assert!(matches!(s.cells().column("n_genes"), Some(ObsColumn::Number(v)) if v[0] == 1003.0));
    let kinds: Vec<_> = s
        .matrices()
        .iter()
        .map(|m| (m.path.as_str(), m.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("X", ValueKind::HasNegative),
            ("raw.X", ValueKind::NonIntegerNonNegative)
        ]
    );
    let mut r = h5ad("h5ad/pbmc68k_reduced.h5ad", MatrixChoice::RawX);
    assert_eq!(r.info().matrix_path, "raw.X");
    let sr = stats(&mut r, 1000);
    assert_eq!(sr.nnz, 174_400);
    assert!((sr.max - 6.489).abs() < 1e-3);
    assert_eq!(r.genes().names.len(), 765);
    // Auto: nothing is raw counts, so X with a warning.
    let a = h5ad("h5ad/pbmc68k_reduced.h5ad", MatrixChoice::Auto);
    assert_eq!(a.info().matrix_path, "X");
    assert!(
        a.warnings()
            .iter()
            .any(|w| w.contains("no matrix looks like raw counts"))
    );
}

#[test]
fn baron_mouse() {
    let mut s = h5ad("h5ad/baron_mouse_pancreas_822.h5ad", MatrixChoice::Auto);
    assert_eq!((s.info().n_cells, s.info().n_genes), (822, 14878));
    let st = stats(&mut s, 500);
    assert_eq!(
        (st.nnz, st.sum, st.max, st.integer),
        (1_164_056, 3_075_159.0, 3477.0, true)
    );
    expect_counts(
        &s,
        "cell_type",
        "beta 343, ductal 236, delta 85, endothelial 72, quiescent_stellate 29, macrophage 17, gamma 14, alpha 9, activated_stellate 4, immune_other 4, T_cell 4, schwann 3, B_cell 2",
    );
    assert!(s.genes().names.iter().any(|g| g == "0610007P14Rik"));
    assert!(s.warnings().is_empty(), "{:?}", s.warnings());
}

#[test]
fn mouse_brain_duplicate_gene_names() {
    let mut s = h5ad("h5ad/mouse_brain_10k_1000genes.h5ad", MatrixChoice::Auto);
    assert_eq!((s.info().n_cells, s.info().n_genes), (10_000, 1000));
    let st = stats(&mut s, 1024);
    assert_eq!(
        (st.nnz, st.sum, st.max, st.integer),
        (691_914, 1_597_698.0, 624.0, true)
    );
    assert!(s.cells().columns.is_empty());
    assert_eq!(s.cells().names[0], "AAACCTGAGATAGGAG-1");
    assert!(s.genes().ids.as_ref().unwrap()[0].starts_with("ENSMUSG"));
    // Rp1 occurs twice: kept, and reported.
    assert_eq!(s.genes().names.iter().filter(|g| *g == "Rp1").count(), 2);
    assert!(
        s.warnings().iter().any(|w| w.contains("Rp1 ×2")),
        "{:?}",
        s.warnings()
    );
}

#[test]
fn cider_cross_species() {
    let mut s = h5ad(
        "h5ad/cider_pancreas_human_mouse_3donors.h5ad",
        MatrixChoice::Auto,
    );
    assert_eq!((s.info().n_cells, s.info().n_genes), (134, 12474));
    let st = stats(&mut s, 50);
    assert!(st.integer && st.min == 0.0);
    assert_eq!(st.nnz, 215_365);
    expect_counts(
        &s,
        "cell_type",
        "activated_stellate 29, alpha 18, beta 20, delta 29, macrophage 38",
    );
    expect_counts(
        &s,
        "species",
        &format!(
            "human {}, mouse {}",
            17 + 18 + 5 + 13 + 22,
            12 + 15 + 16 + 16
        ),
    );
    assert!(matches!(
        s.cells().column("is_duplicate_column"),
        Some(ObsColumn::Number(_))
    ));
}
