use super::*;
use crate::cells_io::read_cells_file;
use genecompass_core::cells::hf_dataset::read_hf_dataset;
use genecompass_core::checkpoint::TensorMap;

const CELLTYPE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/hf-datasets/celltype-tiny"
);

/// Real tokenized cells, repeated past several write batches (the last one partial), every
/// third one marked mouse (a tensor of zeros would hide a write that never happened).
fn cells() -> CellSet {
    let set = read_hf_dataset(Path::new(CELLTYPE), Some("celltype"))
        .expect("the tests need ../shared beside the checkout");
    let cells: Vec<TokenizedCell> = set
        .cells
        .iter()
        .cycle()
        .take(2 * WRITE_BATCH + 37)
        .enumerate()
        .map(|(i, c)| TokenizedCell {
            species: if i % 3 == 0 {
                genecompass_core::cells::Species::Mouse
            } else {
                c.species
            },
            ..c.clone()
        })
        .collect();
    CellSet {
        cells,
        padded_len: None,
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gc-cells-io-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn both_layouts_read_back_cell_for_cell() {
    let many = cells();
    // Few cells make small tensors, written close together: their writes must not overlap.
    let few = CellSet {
        cells: many.cells[..20].to_vec(),
        padded_len: None,
    };
    for (set, layout) in [
        (&many, CellsLayout::Padded),
        (&many, CellsLayout::Ragged),
        (&few, CellsLayout::Padded),
        (&few, CellsLayout::Ragged),
    ] {
        let longest = set.cells.iter().map(|c| c.len()).max().unwrap();
        let tokens: usize = set.cells.iter().map(|c| c.len()).sum();
        let d = tmp(&format!("roundtrip-{layout:?}-{}", set.len()));
        let p = d.join("cells.safetensors");
        let meta = HashMap::from([("source".to_string(), "celltype-tiny".to_string())]);
        write_cells_safetensors(&p, set, layout, meta).unwrap();
        let (back, meta) = read_cells_file(&p).unwrap();
        assert_eq!(meta["source"], "celltype-tiny");
        assert_eq!(back.len(), set.len());
        for (i, (a, b)) in set.cells.iter().zip(&back.cells).enumerate() {
            assert_eq!(a.input_ids, b.input_ids, "{layout:?} cell {i}");
            assert_eq!(a.values, b.values, "{layout:?} cell {i}");
            assert_eq!(a.species, b.species, "{layout:?} cell {i}");
            assert_eq!(a.label, b.label, "{layout:?} cell {i}");
        }
        let map = TensorMap::read_safetensors(&p).unwrap();
        match layout {
            CellsLayout::Padded => {
                assert_eq!(back.padded_len, Some(longest));
                let lens = map.tensors["lengths"].to_i64().unwrap();
                assert!(
                    lens.iter()
                        .zip(&set.cells)
                        .all(|(&l, c)| l as usize == c.len())
                );
                assert_eq!(map.tensors["input_ids"].shape, vec![set.len(), longest]);
            }
            CellsLayout::Ragged => {
                assert_eq!(map.tensors["input_ids"].shape, vec![tokens]);
                assert_eq!(map.tensors["offsets"].shape, vec![set.len() + 1]);
                assert_eq!(meta["layout"], "ragged");
            }
        }
        // No temporary file is left.
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[test]
fn a_damaged_ragged_file_is_refused() {
    let set = cells();
    let d = tmp("damaged");
    let p = d.join("cells.safetensors");
    write_cells_safetensors(&p, &set, CellsLayout::Ragged, HashMap::new()).unwrap();
    // Offsets that run past the tokens: rewrite the last offset.
    let map = TensorMap::read_safetensors(&p).unwrap();
    let tokens = map.tensors["input_ids"].shape[0] as i64;
    let mut bytes = std::fs::read(&p).unwrap();
    let needle = tokens.to_le_bytes();
    let at = bytes.windows(8).rposition(|w| w == needle).unwrap();
    bytes[at..at + 8].copy_from_slice(&(tokens + 5).to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();
    let e = format!("{:#}", read_cells_file(&p).unwrap_err());
    assert!(e.contains("`offsets` must rise from 0"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn short_or_long_streams_fail_and_leave_nothing() {
    let set = cells();
    let d = tmp("counts");
    let p = d.join("cells.safetensors");
    let shape = CellsShape::of(&set);
    let padded = CellsLayout::Padded;

    // Fewer cells than announced: finish refuses, the temporary file is removed.
    let more = CellsShape {
        cells: shape.cells + 1,
        ..shape
    };
    let mut w = CellsWriter::create(&p, CellsLayout::Ragged, more, None, HashMap::new()).unwrap();
    for c in &set.cells {
        w.push(c).unwrap();
    }
    let e = format!("{:#}", w.finish().unwrap_err());
    assert!(e.contains("written") && e.contains("announced"), "{e}");

    // More cells than announced, or a cell wider than announced.
    let one = CellsShape { cells: 1, ..shape };
    let mut w = CellsWriter::create(&p, padded, one, None, HashMap::new()).unwrap();
    w.push(&set.cells[0]).unwrap();
    let e = format!("{:#}", w.push(&set.cells[1]).unwrap_err());
    assert!(e.contains("more cells than the 1 announced"), "{e}");
    drop(w);
    let narrow = CellsShape {
        cells: 2,
        longest: 3,
        tokens: 6,
    };
    let mut w = CellsWriter::create(&p, padded, narrow, None, HashMap::new()).unwrap();
    let e = format!("{:#}", w.push(&set.cells[0]).unwrap_err());
    assert!(e.contains("3 tokens wide"), "{e}");
    drop(w);

    // A wrong label count is refused before anything is written.
    let e = CellsWriter::create(&p, padded, narrow, Some(vec!["a".into()]), HashMap::new())
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("1 labels for 2 cells"));
    assert_eq!(
        std::fs::read_dir(&d).unwrap().count(),
        0,
        "nothing left behind"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_padding_id_inside_a_cell_is_refused_in_both_layouts() {
    let mut set = cells();
    set.cells[3].input_ids[1] = 0;
    for layout in [CellsLayout::Padded, CellsLayout::Ragged] {
        let d = tmp(&format!("zero-id-{layout:?}"));
        let p = d.join("cells.safetensors");
        write_cells_safetensors(&p, &set, layout, HashMap::new()).unwrap();
        // The padded layout carries an attention mask, so a 0 inside a cell is not padding.
        let e = format!("{:#}", read_cells_file(&p).unwrap_err());
        assert!(e.contains("cell 3 has token id 0"), "{layout:?}: {e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
