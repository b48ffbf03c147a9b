//! The real 10x files and format detection.

use super::*;

// ---------------------------------------------------------------- 10x

#[test]
fn tenx_v2_folder_and_h5_agree() {
    let mut dir = open_tenx_dir(&shared("10x/1.2.0/filtered_gene_bc_matrices/hg19_chr21")).unwrap();
    assert_eq!((dir.info().n_cells, dir.info().n_genes), (12, 343));
    assert!(dir.info().format.contains("v2"), "{}", dir.info().format);
    let sd = all_stats(&mut dir);
    assert_eq!((sd.nnz, sd.sum, sd.max), (12, 12.0, 1.0));
    assert!(sd.cell_sums.iter().all(|&s| s == 1.0));
    assert_eq!(dir.genes().names[0], dir.genes().ids.as_ref().unwrap()[0]);
    let mut h5 = open_tenx_h5(
        &shared("10x/1.2.0/filtered_gene_bc_matrices_h5.h5"),
        GenomeChoice::Auto,
    )
    .unwrap();
    assert_eq!(h5.genomes(), ["hg19_chr21"]);
    assert_eq!((h5.info().n_cells, h5.info().n_genes), (12, 343));
    let sh = all_stats(&mut h5);
    assert_eq!(sh.cell_sums, sd.cell_sums);
    assert_eq!(h5.genes().names, dir.genes().names);
    assert_eq!(h5.cells().names, dir.cells().names);
    // Same chunks, not just the same sums.
    dir.rewind().unwrap();
    h5.rewind().unwrap();
    assert_eq!(dir.next_chunk(100).unwrap(), h5.next_chunk(100).unwrap());
}

#[test]
fn tenx_v3_folder_and_h5_agree() {
    let d = shared("10x/3.0.0/filtered_feature_bc_matrix");
    let mut dir = open_tenx_dir(&d).unwrap();
    assert_eq!((dir.info().n_cells, dir.info().n_genes), (1107, 507));
    assert!(dir.info().format.contains("v3"));
    let sd = all_stats(&mut dir);
    assert_eq!((sd.nnz, sd.max, sd.integer), (23_866, 36.0, true));
    assert_eq!(dir.genes().ids.as_ref().unwrap()[0], "ENSG00000279493");
    assert_eq!(dir.genes().names[0], "CH507-9B2.2");
    assert!(
        dir.genes()
            .feature_types
            .as_ref()
            .unwrap()
            .iter()
            .all(|t| t == "Gene Expression")
    );
    let rd = |f: &str| std::fs::read(d.join(f)).unwrap();
    let mut bytes = open_tenx_mtx_bytes(
        &rd("matrix.mtx.gz"),
        &rd("features.tsv.gz"),
        &rd("barcodes.tsv.gz"),
        "upload",
    )
    .unwrap();
    assert_eq!(all_stats(&mut bytes).cell_sums, sd.cell_sums);
    let h5bytes = std::fs::read(shared("10x/3.0.0/filtered_feature_bc_matrix.h5")).unwrap();
    let mut h5 = open_tenx_h5_bytes(h5bytes, "v3.h5", GenomeChoice::Auto).unwrap();
    assert_eq!(h5.genomes(), ["GRCh38_chr21"]);
    let sh = all_stats(&mut h5);
    assert_eq!(sh.cell_sums, sd.cell_sums);
    assert_eq!(sh.nnz, 23_866);
    assert_eq!(h5.genes().names, dir.genes().names);
    assert_eq!(h5.genes().ids, dir.genes().ids);
    assert_eq!(h5.genes().feature_types, dir.genes().feature_types);
    assert_eq!(h5.cells().names, dir.cells().names);
    assert!(h5.warnings().is_empty(), "{:?}", h5.warnings());
}

#[test]
fn tenx_multiple_genomes() {
    let p = shared("10x/1.2.0/multiple_genomes.h5");
    let mut one = open_tenx_h5(&p, GenomeChoice::One("hg19_chr21".into())).unwrap();
    let mut genomes = one.genomes().to_vec();
    genomes.sort();
    assert_eq!(genomes, ["another_genome", "hg19_chr21"]);
    assert_eq!(one.info().n_genes, 343);
    let single = all_stats(
        &mut open_tenx_h5(
            &shared("10x/1.2.0/filtered_gene_bc_matrices_h5.h5"),
            GenomeChoice::Auto,
        )
        .unwrap(),
    );
    assert_eq!(all_stats(&mut one).cell_sums, single.cell_sums);
    let mut other = open_tenx_h5(&p, GenomeChoice::One("another_genome".into())).unwrap();
    assert_eq!(other.genes().names[0], "gene_0");
    let so = all_stats(&mut other);
    assert_eq!(so.max, 2.0);
    let mut both = open_tenx_h5(&p, GenomeChoice::Auto).unwrap();
    assert_eq!(both.info().n_genes, 686);
    assert!(
        both.warnings().iter().any(|w| w.contains("genomes")),
        "{:?}",
        both.warnings()
    );
    let sb = all_stats(&mut both);
    assert_eq!(sb.nnz, so.nnz + single.nnz);
    let g = both.genes().genomes.as_ref().unwrap();
    assert_eq!(g.iter().filter(|x| *x == "hg19_chr21").count(), 343);
    let err = open_tenx_h5(&p, GenomeChoice::One("mm10".into()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("mm10") && err.contains("hg19_chr21") && err.contains("multiple_genomes.h5"),
        "{err}"
    );
}

// ---------------------------------------------------------------- dispatch

#[test]
fn open_path_detects_every_real_file() {
    for (rel, cells, genes) in [
        ("h5ad/wu2020_tcells_200.h5ad", 200, 30727),
        ("h5ad/pbmc68k_reduced.h5ad", 700, 765),
        ("10x/1.2.0/filtered_gene_bc_matrices/hg19_chr21", 12, 343),
        (
            "10x/1.2.0/filtered_gene_bc_matrices/hg19_chr21/matrix.mtx",
            12,
            343,
        ),
        ("10x/1.2.0/filtered_gene_bc_matrices_h5.h5", 12, 343),
        ("10x/1.2.0/multiple_genomes.h5", 12, 686),
        ("10x/3.0.0/filtered_feature_bc_matrix", 1107, 507),
        ("10x/3.0.0/filtered_feature_bc_matrix.h5", 1107, 507),
    ] {
        let s =
            open_path(&shared(rel), MatrixChoice::Auto).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(
            (s.info().n_cells, s.info().n_genes),
            (cells, genes),
            "{rel}"
        );
    }
    let bytes = std::fs::read(shared("h5ad/baron_mouse_pancreas_822.h5ad")).unwrap();
    let s = open_bytes("baron.h5ad", bytes).unwrap();
    assert_eq!(s.info().n_cells, 822);
    let bytes = std::fs::read(shared("10x/3.0.0/filtered_feature_bc_matrix.h5")).unwrap();
    assert_eq!(open_bytes("x.h5", bytes).unwrap().info().n_genes, 507);
}
