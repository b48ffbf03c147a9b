//! Error paths: truncated, corrupt, inconsistent, not single-cell.

use super::*;

// ---------------------------------------------------------------- errors

#[test]
fn truncated_and_corrupt_hdf5() {
    let bytes = std::fs::read(shared("h5ad/wu2020_tcells_200.h5ad")).unwrap();
    let err = open_h5ad_bytes(bytes[..1000].to_vec(), "wu_cut.h5ad", MatrixChoice::Auto)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("wu_cut.h5ad") && err.contains("truncated"),
        "{err}"
    );
    let err = open_bytes("wu_cut.h5ad", bytes[..bytes.len() / 2].to_vec())
        .err()
        .map(|e| e.to_string());
    let half = match err {
        Some(e) => e,
        None => panic!("half a file opened"),
    };
    assert!(half.contains("wu_cut.h5ad"), "{half}");
    // Corrupt the middle (compressed data chunks): opening or reading must fail cleanly.
    let mut bad = bytes.clone();
    for b in &mut bad[bytes.len() / 3..bytes.len() / 3 + 200_000] {
        *b ^= 0x5a;
    }
    let outcome = open_h5ad_bytes(bad, "wu_bad.h5ad", MatrixChoice::X).and_then(|mut s| {
        while s.next_chunk(50)?.is_some() {}
        Ok(())
    });
    let err = outcome
        .expect_err("corrupt data must be detected")
        .to_string();
    assert!(err.contains("wu_bad.h5ad"), "{err}");
    // Not HDF5 at all but called .h5ad.
    let err = open_h5ad_bytes(b"hello".to_vec(), "x.h5ad", MatrixChoice::Auto)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not an HDF5 file"), "{err}");
}

#[test]
fn hdf5_that_is_not_single_cell() {
    let mut b = hdf5_pure::FileBuilder::new();
    b.create_dataset("temperature").with_f64_data(&[22.5, 23.1]);
    let err = open_bytes("sensor.h5", b.finish().unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("sensor.h5") && err.contains("temperature"),
        "{err}"
    );
    let mut b = hdf5_pure::FileBuilder::new();
    b.create_dataset("temperature").with_f64_data(&[22.5, 23.1]);
    let err = open_h5ad_bytes(b.finish().unwrap(), "s.h5ad", MatrixChoice::Auto)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("does not look like single-cell"), "{err}");
}

#[test]
fn text_files_that_are_not_count_tables() {
    for rel in [
        "genes/hgnc_human_gene_table.tsv.gz",
        "priors/omnipath_transcriptional_tf_target.tsv.gz",
        "README.md",
    ] {
        let err = open_path(&shared(rel), MatrixChoice::Auto)
            .err()
            .unwrap_or_else(|| panic!("{rel} opened"))
            .to_string();
        assert!(err.contains(rel.rsplit('/').next().unwrap()), "{err}");
        assert!(
            err.contains("not a number") || err.contains("fields"),
            "{rel}: {err}"
        );
    }
    let err = open_bytes("a.bin", vec![0xff, 0xfe, 0, 1, 2])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a text file"), "{err}");
    let err = open_bytes("a.zip", b"PK\x03\x04rest".to_vec())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("zip"), "{err}");
    let err = open_bytes("empty.csv", Vec::new())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    let err = open_bytes("hdr.csv", b"cell,CD3E\n".to_vec())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn mtx_folder_errors() {
    let d = shared("10x/3.0.0/filtered_feature_bc_matrix");
    let rd = |f: &str| std::fs::read(d.join(f)).unwrap();
    let (m, f, b) = (
        rd("matrix.mtx.gz"),
        rd("features.tsv.gz"),
        rd("barcodes.tsv.gz"),
    );
    // Barcodes of another run (one fewer).
    let text = String::from_utf8(flate2::read::GzDecoder::new(&b[..]).bytes_text()).unwrap();
    let fewer: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let err = open_tenx_mtx_bytes(&m, &f, fewer.as_bytes(), "run")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("1106 barcodes") && err.contains("do not belong together"),
        "{err}"
    );
    // Truncated matrix.mtx.gz.
    let err = open_tenx_mtx_bytes(&m[..m.len() / 2], &f, &b, "run")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("run/matrix.mtx") && err.contains("truncated"),
        "{err}"
    );
    // Truncated but valid text: fewer entries than promised.
    let mtx = "%%MatrixMarket matrix coordinate integer general\n3 2 3\n1 1 5\n2 2 1\n";
    let err = open_tenx_mtx_bytes(mtx.as_bytes(), b"A\nB\nC\n", b"c1\nc2\n", "t")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("promises 3 entries but 2"), "{err}");
    // Empty matrix.
    let mtx = "%%MatrixMarket matrix coordinate integer general\n3 0 0\n";
    let err = open_tenx_mtx_bytes(mtx.as_bytes(), b"A\nB\nC\n", b"", "t")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("empty"), "{err}");
    // Non-gene features are dropped and reported.
    let mtx = "%%MatrixMarket matrix coordinate integer general\n3 2 3\n1 1 5\n3 1 7\n2 2 1\n";
    let feats =
        "E1\tA\tGene Expression\nE2\tB\tGene Expression\nAB1\tCD4_TotalSeq\tAntibody Capture\n";
    let s = open_tenx_mtx_bytes(mtx.as_bytes(), feats.as_bytes(), b"c1\nc2\n", "t").unwrap();
    assert_eq!(s.genes().names, ["A", "B"]);
    assert_eq!(s.matrix().data, vec![5.0, 1.0]);
    assert!(
        s.warnings()
            .iter()
            .any(|w| w.contains("Antibody Capture: 1")),
        "{:?}",
        s.warnings()
    );
    // A folder that is not a 10x folder.
    let err = open_path(&shared("genes"), MatrixChoice::Auto)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("matrix.mtx") && err.contains("hgnc_human_gene_table.tsv.gz"),
        "{err}"
    );
}

trait BytesText {
    fn bytes_text(self) -> Vec<u8>;
}
impl<R: std::io::Read> BytesText for R {
    fn bytes_text(mut self) -> Vec<u8> {
        let mut v = Vec::new();
        self.read_to_end(&mut v).unwrap();
        v
    }
}

/// A large binary file that is no single-cell format is refused from its first bytes, before
/// the reader pulls the whole file into memory (a server must not, for a 2 GB upload of junk).
#[test]
fn binary_junk_is_refused_from_its_head() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("binary-junk");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("zeros.csv");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(64 << 20).unwrap();
    let err = open_path(&path, MatrixChoice::Auto)
        .err()
        .expect("zeros are no table")
        .to_string();
    assert!(
        err.contains("zeros.csv") && err.contains("not a text file"),
        "{err}"
    );
    let err = open_bytes("zeros.tsv", vec![0u8; 4096])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a text file"), "{err}");
    // A real table with the same reader still opens.
    let csv = dir.join("ok.csv");
    std::fs::write(&csv, "cell,GAPDH,ACTB\nc1,3,0\nc2,0,5\n").unwrap();
    assert!(open_path(&csv, MatrixChoice::Auto).is_ok());
}
