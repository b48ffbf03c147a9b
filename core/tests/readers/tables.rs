//! CSV/TSV tables cut from a real file.

use super::*;

// ---------------------------------------------------------------- CSV / TSV

#[test]
fn tables_from_a_real_submatrix() {
    // Genes 25_000.. of wu2020 are mostly ordinary symbols; take 300 with some non-zeros.
    let (cells, genes, rows) = wu_dense(40, 30727);
    let cols: Vec<usize> = (0..30727)
        .filter(|&g| rows.iter().any(|r| r[g] != 0.0))
        .skip(2000)
        .take(300)
        .collect();
    let genes: Vec<String> = cols.iter().map(|&g| genes[g].clone()).collect();
    let rows: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| cols.iter().map(|&g| r[g]).collect())
        .collect();
    // cells × genes CSV.
    let mut csv = format!(",{}\n", genes.join(","));
    for (c, r) in cells.iter().zip(&rows) {
        csv += &format!(
            "{c},{}\n",
            r.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    let (_csv_dir, p) = tmp("cells_by_genes.csv");
    std::fs::write(&p, &csv).unwrap();
    let mut s = open_path(&p, MatrixChoice::Auto).unwrap();
    assert!(
        s.info()
            .format
            .starts_with("CSV table, cells × genes (detected"),
        "{}",
        s.info().format
    );
    assert_eq!(s.cells().names, cells);
    assert_eq!(s.genes().names, genes);
    assert_eq!(dense_of(s.as_mut()), rows);
    // genes × cells TSV, gzip'd.
    let mut tsv = format!("gene\t{}\n", cells.join("\t"));
    for (g, name) in genes.iter().enumerate() {
        tsv += &format!(
            "{name}\t{}\n",
            rows.iter()
                .map(|r| r[g].to_string())
                .collect::<Vec<_>>()
                .join("\t")
        );
    }
    let gz = gzip(tsv.as_bytes());
    let (_tsv_dir, p) = tmp("genes_by_cells.tsv.gz");
    std::fs::write(&p, &gz).unwrap();
    let mut s = open_path(&p, MatrixChoice::Auto).unwrap();
    assert!(
        s.info()
            .format
            .starts_with("TSV (gzip) table, genes × cells (detected"),
        "{}",
        s.info().format
    );
    assert_eq!(s.cells().names, cells);
    assert_eq!(dense_of(s.as_mut()), rows);
    // Explicit override wins over detection.
    let forced = open_table_bytes(&gz, "t.tsv.gz", TableOrientation::CellsByGenes).unwrap();
    assert_eq!(forced.info().n_cells, 300);
    // Truncated gzip is an error naming the file.
    let err = open_bytes("cut.tsv.gz", gz[..gz.len() / 2].to_vec())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("cut.tsv.gz") && err.contains("truncated"),
        "{err}"
    );
    // Duplicate gene names are kept and reported.
    let dup = "cell,CD3E,CD3E,MS4A1\nAAACCTGAGATAGGAG-1,1,2,0\nAAACCTGAGCGTTGCC-1,0,0,3\n";
    let s = open_bytes("dup.csv", dup.as_bytes().to_vec()).unwrap();
    assert_eq!(s.info().n_genes, 3);
    assert!(
        s.warnings().iter().any(|w| w.contains("CD3E ×2")),
        "{:?}",
        s.warnings()
    );
}
