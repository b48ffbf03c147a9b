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
    // Entry for entry, in windows that cross the files' HDF5 chunks; the on-demand reader
    // gets its chunks back and refills their buffers (longer or shorter each time).
    whole.rewind().unwrap();
    streamed.rewind().unwrap();
    while let Some(w) = whole.next_chunk(37).unwrap() {
        let got = streamed.next_chunk(37).unwrap();
        assert_eq!(got.as_ref(), Some(&w), "{name}");
        streamed.recycle(got.unwrap());
    }
    assert_eq!(streamed.next_chunk(37).unwrap(), None, "{name}");
}

#[test]
fn every_hdf5_file_reads_the_same_on_demand() {
    for rel in [
        "h5ad/baron_mouse_pancreas_822.h5ad",
        "h5ad/wu2020_tcells_200.h5ad",
        "h5ad/wu2020_tcells_200_old_schema_v0_6.h5ad",
        "h5ad/pbmc68k_reduced.h5ad",
        // Uncompressed chunks: read straight into the chunk's buffers on demand.
        "h5ad/spectra_immune_1000.h5ad",
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

/// A CSR h5ad of 40 real cells (wu2020) stored without compression: contiguous or chunked,
/// with int32 or int64 indices and float32 or int32 counts.
fn plain_h5ad(chunks: Option<u64>, wide: bool, bad_index: bool) -> Vec<u8> {
    use hdf5_pure::{AttrValue, FileBuilder};
    let (cells, genes, rows) = wu_dense(40, 300);
    let enc = |t: &str| AttrValue::String(t.to_string());
    let (mut d, mut ix, mut ip) = (vec![], vec![], vec![0i64]);
    for r in &rows {
        for (g, &v) in r.iter().enumerate() {
            if v != 0.0 {
                d.push(v);
                ix.push(g as i64);
            }
        }
        ip.push(d.len() as i64);
    }
    if bad_index {
        ix[d.len() / 2] = genes.len() as i64 + 5;
    }
    let mut b = FileBuilder::new();
    b.set_attr("encoding-type", enc("anndata"));
    let mut x = b.create_group("X");
    x.set_attr("encoding-type", enc("csr_matrix"));
    x.set_attr(
        "shape",
        AttrValue::I64Array(vec![rows.len() as i64, genes.len() as i64]),
    );
    let data = x.create_dataset("data");
    if wide {
        data.with_i32_data(&d.iter().map(|&v| v as i32).collect::<Vec<_>>());
    } else {
        data.with_f32_data(&d);
    }
    if let Some(c) = chunks {
        data.with_chunks(&[c]);
    }
    let indices = x.create_dataset("indices");
    if wide {
        indices.with_i64_data(&ix);
    } else {
        indices.with_i32_data(&ix.iter().map(|&i| i as i32).collect::<Vec<_>>());
    }
    if let Some(c) = chunks {
        indices.with_chunks(&[c]);
    }
    x.create_dataset("indptr").with_i64_data(&ip);
    b.add_group(x.finish());
    for (group, names) in [("obs", &cells), ("var", &genes)] {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut g = b.create_group(group);
        g.set_attr("_index", enc("_index"));
        g.set_attr("encoding-type", enc("dataframe"));
        g.create_dataset("_index").with_vlen_strings(&names);
        b.add_group(g.finish());
    }
    b.finish().unwrap()
}

#[test]
fn uncompressed_matrices_read_the_same_on_demand() {
    for chunks in [None, Some(97), Some(1000)] {
        for wide in [false, true] {
            same(
                &format!("plain-{chunks:?}-{wide}.h5ad"),
                plain_h5ad(chunks, wide, false),
            );
            // An index past the genes is refused either way, naming the indices.
            let bytes = plain_h5ad(chunks, wide, true);
            let read_all = |mut s: Box<dyn CellSource>| -> Result<(), DataError> {
                while s.next_chunk(7)?.is_some() {}
                Ok(())
            };
            let whole = read_all(open_bytes("bad.h5ad", bytes.clone()).unwrap()).unwrap_err();
            let streamed =
                read_all(open_source("bad.h5ad", on_demand(bytes)).unwrap()).unwrap_err();
            for e in [whole.to_string(), streamed.to_string()] {
                assert!(
                    e.contains("X/indices") && e.contains("305"),
                    "{chunks:?} {wide}: {e}"
                );
            }
        }
    }
}

/// What a reader says its file stores before reading ([`CellSource::stored_entries`], which
/// decides whether a second pass is kept in memory) is what a pass reads (a reader that drops
/// features would read fewer: a bound); dense matrices do not say.
#[test]
fn the_stored_entry_count_is_what_a_pass_reads() {
    for (rel, sparse) in [
        ("h5ad/baron_mouse_pancreas_822.h5ad", true),
        ("h5ad/wu2020_tcells_200.h5ad", true),
        ("h5ad/wu2020_tcells_200_old_schema_v0_6.h5ad", true),
        ("h5ad/mouse_brain_10k_1000genes.h5ad", true),
        ("h5ad/pbmc68k_reduced.h5ad", false),
        ("10x/1.2.0/filtered_gene_bc_matrices_h5.h5", true),
        ("10x/1.2.0/multiple_genomes.h5", true),
        ("10x/3.0.0/filtered_feature_bc_matrix.h5", true),
    ] {
        let mut s = open_source(rel, on_demand(std::fs::read(shared(rel)).unwrap()))
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        let stored = s.stored_entries();
        let nnz = stats(&mut *s, 300).nnz;
        match (sparse, stored) {
            (true, Some(e)) => assert_eq!(e, nnz, "{rel}"),
            (false, None) => {}
            _ => panic!("{rel}: {stored:?} stored, {nnz} read"),
        }
    }
}
