//! Files read on demand ([`open_source`], the browser worker's path) give what the whole-file
//! reader gives: the same matrix, genes and cells, and the same refusals.

use std::io::Write;
use std::sync::Arc;

use super::*;

/// A source with small cached blocks, so that reads cross block edges all the time.
fn on_demand(bytes: Vec<u8>) -> Arc<dyn ByteSource> {
    Arc::new(CachedSource::new(bytes, 4096, 4))
}

fn same(name: &str, bytes: Vec<u8>) {
    let mut whole = open_bytes(name, bytes.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut streamed =
        open_source(name, on_demand(bytes)).unwrap_or_else(|e| panic!("{name} on demand: {e}"));
    assert_eq!(streamed.info(), whole.info(), "{name}");
    assert_eq!(streamed.genes().names, whole.genes().names, "{name}");
    assert_eq!(streamed.cells().names, whole.cells().names, "{name}");
    let (a, b) = (stats(&mut *whole, 300), stats(&mut *streamed, 300));
    assert_eq!((a.n_cells, a.nnz), (b.n_cells, b.nnz), "{name}");
    assert_eq!(a.cell_sums, b.cell_sums, "{name}");
}

#[test]
fn every_hdf5_file_reads_the_same_on_demand() {
    for rel in [
        "h5ad/baron_mouse_pancreas_822.h5ad",
        "h5ad/wu2020_tcells_200.h5ad",
        "h5ad/wu2020_tcells_200_old_schema_v0_6.h5ad",
        "h5ad/pbmc68k_reduced.h5ad",
        "10x/1.2.0/filtered_gene_bc_matrices_h5.h5",
        "10x/3.0.0/filtered_feature_bc_matrix.h5",
    ] {
        same(rel, std::fs::read(shared(rel)).unwrap());
    }
}

#[test]
fn tables_stream_from_a_source_gzipped_or_not() {
    let mut csv = String::from(",Cd3e,Cd4,Ins1\n");
    for i in 0..500 {
        csv += &format!("cell{i},{},{},{}\n", i % 3, i % 5, i % 7);
    }
    same("t.csv", csv.clone().into_bytes());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(csv.as_bytes()).unwrap();
    same("t.csv.gz", gz.finish().unwrap());
}

#[test]
fn bad_files_are_refused_on_demand_as_whole() {
    let baron = std::fs::read(shared("h5ad/baron_mouse_pancreas_822.h5ad")).unwrap();
    let cut = baron[..baron.len() / 2].to_vec();
    let mtx = b"%%MatrixMarket matrix coordinate integer general\n1 1 1\n1 1 3\n".to_vec();
    for (name, bytes, says) in [
        ("cut.h5ad", cut, "truncated"),
        ("empty.csv", Vec::new(), "empty"),
        ("a.zip", b"PK\x03\x04rest".to_vec(), "zip"),
        ("m.mtx", mtx, "lone Matrix Market"),
    ] {
        let e = open_source(name, on_demand(bytes))
            .err()
            .unwrap_or_else(|| panic!("{name} accepted"))
            .to_string();
        assert!(e.contains(name) && e.contains(says), "{name}: {e}");
    }
}
