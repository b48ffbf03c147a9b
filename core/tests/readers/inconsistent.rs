//! Files whose parts disagree (a matrix and its cell or gene lists of different lengths), empty
//! matrices, and corrupt compressed text: each is refused with the file and the field named.

use super::*;
use hdf5_pure::{AttrValue, FileBuilder};

/// A minimal h5ad: `X` as CSR of `shape` with `nnz` ones along the diagonal, and the given
/// obs and var names.
fn h5ad(shape: [usize; 2], obs: &[&str], var: &[&str]) -> Vec<u8> {
    let enc = |t: &str| AttrValue::String(t.to_string());
    let mut b = FileBuilder::new();
    b.set_attr("encoding-type", enc("anndata"));
    let mut x = b.create_group("X");
    x.set_attr("encoding-type", enc("csr_matrix"));
    x.set_attr(
        "shape",
        AttrValue::I64Array(vec![shape[0] as i64, shape[1] as i64]),
    );
    let diag = shape[0].min(shape[1]);
    let data: Vec<f32> = vec![1.0; diag];
    let indices: Vec<i32> = (0..diag as i32).collect();
    let indptr: Vec<i32> = (0..=shape[0]).map(|i| i.min(diag) as i32).collect();
    x.create_dataset("data").with_f32_data(&data);
    x.create_dataset("indices").with_i32_data(&indices);
    x.create_dataset("indptr").with_i32_data(&indptr);
    b.add_group(x.finish());
    for (name, names) in [("obs", obs), ("var", var)] {
        let mut g = b.create_group(name);
        g.set_attr("_index", enc("_index"));
        g.set_attr("encoding-type", enc("dataframe"));
        g.create_dataset("_index").with_vlen_strings(names);
        b.add_group(g.finish());
    }
    b.finish().unwrap()
}

fn h5ad_error(bytes: Vec<u8>) -> String {
    open_h5ad_bytes(bytes, "parts.h5ad", MatrixChoice::Auto)
        .err()
        .expect("an inconsistent file must be refused")
        .to_string()
}

#[test]
fn h5ad_whose_cell_or_gene_names_do_not_match_the_matrix() {
    // The file itself is sound.
    let ok = open_h5ad_bytes(
        h5ad([3, 2], &["c1", "c2", "c3"], &["Gapdh", "Actb"]),
        "parts.h5ad",
        MatrixChoice::Auto,
    )
    .unwrap();
    assert_eq!((ok.info().n_cells, ok.info().n_genes), (3, 2));

    let err = h5ad_error(h5ad([3, 2], &["c1", "c2"], &["Gapdh", "Actb"]));
    assert!(
        err.contains("parts.h5ad") && err.contains("`obs` has 2 rows but the matrix has 3"),
        "{err}"
    );
    let err = h5ad_error(h5ad(
        [3, 2],
        &["c1", "c2", "c3"],
        &["Gapdh", "Actb", "Ins1"],
    ));
    assert!(
        err.contains("`var` has 3 rows but the matrix has 2"),
        "{err}"
    );
}

#[test]
fn empty_h5ad_is_refused() {
    let err = h5ad_error(h5ad([0, 2], &[], &["Gapdh", "Actb"]));
    assert!(
        err.contains("parts.h5ad") && err.contains("empty") && err.contains("0 cells"),
        "{err}"
    );
    let err = h5ad_error(h5ad([2, 0], &["c1", "c2"], &[]));
    assert!(err.contains("empty") && err.contains("0 genes"), "{err}");
}

/// A Cell Ranger v3 `.h5` of 3 cells × 2 genes whose lists have the given lengths.
fn tenx_v3(barcodes: &[&str], ids: &[&str]) -> Vec<u8> {
    let mut b = FileBuilder::new();
    let mut m = b.create_group("matrix");
    m.create_dataset("data").with_i32_data(&[1, 2, 3]);
    m.create_dataset("indices").with_i64_data(&[0, 1, 0]);
    m.create_dataset("indptr").with_i64_data(&[0, 1, 2, 3]);
    m.create_dataset("shape").with_i32_data(&[2, 3]);
    m.create_dataset("barcodes")
        .with_ascii_strings(barcodes)
        .unwrap();
    let mut f = m.create_group("features");
    f.create_dataset("id").with_ascii_strings(ids).unwrap();
    f.create_dataset("name").with_ascii_strings(ids).unwrap();
    let types = vec!["Gene Expression"; ids.len()];
    f.create_dataset("feature_type")
        .with_ascii_strings(&types)
        .unwrap();
    m.add_group(f.finish());
    b.add_group(m.finish());
    b.finish().unwrap()
}

#[test]
fn tenx_h5_whose_barcodes_or_features_do_not_match_the_matrix() {
    let genes = ["ENSG00000111640", "ENSG00000075624"];
    let ok = open_tenx_h5_bytes(
        tenx_v3(&["A-1", "B-1", "C-1"], &genes),
        "run.h5",
        GenomeChoice::Auto,
    )
    .unwrap();
    assert_eq!((ok.info().n_cells, ok.info().n_genes), (3, 2));

    let error = |barcodes: &[&str], ids: &[&str]| {
        open_tenx_h5_bytes(tenx_v3(barcodes, ids), "run.h5", GenomeChoice::Auto)
            .err()
            .expect("an inconsistent file must be refused")
            .to_string()
    };
    let err = error(&["A-1", "B-1"], &genes);
    assert!(
        err.contains("run.h5")
            && err.contains("`matrix/barcodes` has 2 entries but the matrix has 3 cells"),
        "{err}"
    );
    let err = error(&["A-1", "B-1", "C-1"], &genes[..1]);
    assert!(
        err.contains("`matrix/features/name` has 1 entries but the matrix has 2 features"),
        "{err}"
    );
}

#[test]
fn mtx_whose_features_do_not_match_the_matrix() {
    let mtx = "%%MatrixMarket matrix coordinate integer general\n3 2 3\n1 1 5\n3 1 7\n2 2 1\n";
    let err = open_tenx_mtx_bytes(mtx.as_bytes(), b"A\nB\n", b"c1\nc2\n", "run")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("3 × 2")
            && err.contains("2 features")
            && err.contains("do not belong together"),
        "{err}"
    );
}

/// A gzip'd table with flipped bits inside its compressed stream (not merely cut short): the
/// checksum or the inflater catches it, and the error names the file.
#[test]
fn corrupt_gzip_table_is_refused() {
    use std::io::Write;
    let mut text = String::from("cell,Gapdh,Actb,Ins1\n");
    for c in 0..400 {
        text.push_str(&format!("c{c},{},{},{}\n", c % 7, c % 5, c % 3));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let good = gz.finish().unwrap();
    assert!(open_bytes("counts.csv.gz", good.clone()).is_ok());
    let mut bad = good;
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 8] {
        *b ^= 0xa5;
    }
    let err = open_bytes("counts.csv.gz", bad)
        .err()
        .expect("a corrupt gzip must be refused")
        .to_string();
    assert!(err.contains("counts.csv.gz"), "{err}");
    assert!(
        err.contains("gzip") || err.contains("corrupt") || err.contains("invalid"),
        "{err}"
    );
}

/// Every text table of `shared/data` that is not a count matrix (gene tables, orthology,
/// priors, the 10x folders' own lists) is refused when opened, or, for the two all-number
/// tables of gene-family ids, opened as a table none of whose "genes" is a known gene, which
/// the tokenizer refuses. A text file added to `shared/data` fails this test until listed.
#[test]
fn every_text_table_in_shared_data_is_refused_or_names_no_gene() {
    use genecompass_core::tokenize::{EmbeddedGenes, GeneMatchOptions, match_genes};
    let refused_on_open = [
        "genes/gencode_v44_gene_id2name.csv.gz",
        "genes/hgnc_human_gene_table.tsv.gz",
        "genes/biomart_human_to_mouse.csv.gz",
        "genes/mgi_mouse_gene_table.tsv.gz",
        "genes/hcop_human_to_mouse.csv.gz",
        "priors/hgnc_gene_groups/gene_symbols.csv.gz",
        "priors/hgnc_gene_groups/family.csv.gz",
        "priors/omnipath_transcriptional_tf_target.tsv.gz",
        "10x/1.2.0/filtered_gene_bc_matrices/hg19_chr21/genes.tsv",
        "10x/1.2.0/filtered_gene_bc_matrices/hg19_chr21/barcodes.tsv",
        "10x/3.0.0/filtered_feature_bc_matrix/features.tsv.gz",
        "10x/3.0.0/filtered_feature_bc_matrix/barcodes.tsv.gz",
    ];
    let no_known_gene = [
        "priors/hgnc_gene_groups/hierarchy.csv.gz",
        "priors/hgnc_gene_groups/gene_has_family.csv.gz",
    ];
    let mut listed: Vec<&str> = refused_on_open
        .iter()
        .chain(&no_known_gene)
        .copied()
        .collect();
    listed.sort_unstable();
    let mut found = Vec::new();
    let mut dirs = vec![shared("")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                dirs.push(p);
            } else if [".csv", ".tsv", ".csv.gz", ".tsv.gz"]
                .iter()
                .any(|x| name.ends_with(x))
            {
                let rel = p.strip_prefix(shared("")).unwrap();
                found.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    found.sort_unstable();
    assert_eq!(found, listed, "text files of shared/data");

    for rel in refused_on_open {
        let err = open_path(&shared(rel), MatrixChoice::Auto)
            .err()
            .unwrap_or_else(|| panic!("{rel} opened as a count table"))
            .to_string();
        let file = rel.rsplit('/').next().unwrap();
        assert!(err.contains(file), "{rel}: {err}");
    }
    for rel in no_known_gene {
        let src = open_path(&shared(rel), MatrixChoice::Auto).unwrap();
        let genes = &src.genes().names;
        assert!(genes.len() <= 2, "{rel}: {genes:?}");
        match match_genes(src.genes(), &EmbeddedGenes, &GeneMatchOptions::default()) {
            Ok(m) => assert_eq!(m.report.matched_to_vocabulary, 0, "{rel}: {genes:?}"),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}
