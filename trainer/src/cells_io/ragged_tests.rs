use super::*;
use crate::cells_io::write_cells_safetensors;
use genecompass_core::cells::hf_dataset::read_hf_dataset;
use genecompass_core::cells::{CellSet, TokenizedCell};

const CELLTYPE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/hf-datasets/celltype-tiny"
);

/// Real tokenized cells with their labels, repeated to 30,000 (over 300,000 tokens), all
/// mouse (a tokenizer run has one species).
fn cells() -> CellSet {
    let set = read_hf_dataset(Path::new(CELLTYPE), Some("celltype"))
        .expect("the tests need ../shared beside the checkout");
    let cells: Vec<TokenizedCell> = set
        .cells
        .iter()
        .cycle()
        .take(30_000)
        .map(|c| TokenizedCell {
            species: Species::Mouse,
            ..c.clone()
        })
        .collect();
    CellSet {
        cells,
        padded_len: None,
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gc-ragged-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn create(p: &Path, set: &CellSet, meta: HashMap<String, String>) -> anyhow::Result<RaggedWriter> {
    let labels = set.cells.iter().map(|c| c.label.clone()).collect();
    let lengths = set.cells.iter().map(|c| c.len());
    RaggedWriter::create(
        p,
        CellsShape::of(set),
        lengths,
        Species::Mouse,
        labels,
        meta,
    )
}

/// Filled in runs of uneven sizes (empty, one token, across many cells), with the next run
/// opened before the last is handed back as the tokenizer does, the file is byte for byte the
/// one the cell-by-cell writer makes of the same cells, labels and metadata included.
#[test]
fn runs_make_the_same_file_as_cells() {
    let set = cells();
    let ids: Vec<u32> = set.cells.iter().flat_map(|c| c.input_ids.clone()).collect();
    let values: Vec<f32> = set.cells.iter().flat_map(|c| c.values.clone()).collect();
    let total = ids.len();
    assert!(total > 100_000, "{total} tokens");
    let meta = HashMap::from([("source".to_string(), "celltype-tiny".to_string())]);
    let d = tmp("same");
    let want = d.join("cells.safetensors");
    write_cells_safetensors(&want, &set, CellsLayout::Ragged, meta.clone()).unwrap();
    let got = d.join("runs.safetensors");
    let mut w = create(&got, &set, meta).unwrap();
    let sizes = [0, 1, 9_000, 3, 0, 40_000, 77, 25_000];
    let mut at = 0;
    let mut open: Option<RunBuffer> = None;
    for k in 0.. {
        let n = sizes[k % sizes.len()].min(total - at);
        let mut run = w.run(at..at + n).unwrap();
        let (a, b) = run.slots();
        assert_eq!((a.len(), b.len()), (n, n));
        a.copy_from_slice(&ids[at..at + n]);
        b.copy_from_slice(&values[at..at + n]);
        at += n;
        if let Some(last) = open.replace(run) {
            w.filled(last).unwrap();
        }
        if at == total {
            break;
        }
    }
    w.filled(open.unwrap()).unwrap();
    w.finish().unwrap();
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&want).unwrap());
    // No temporary file is left.
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
    let _ = std::fs::remove_dir_all(&d);
}

/// Runs out of order or past the end are refused, a file short of tokens is not renamed into
/// place, and a dropped or refused writer leaves nothing behind.
#[test]
fn runs_out_of_order_or_missing_fail_and_leave_nothing() {
    let set = cells();
    let total: usize = set.cells.iter().map(|c| c.len()).sum();
    let d = tmp("fail");
    let p = d.join("cells.safetensors");

    let mut w = create(&p, &set, HashMap::new()).unwrap();
    let e = format!("{:#}", w.run(5..10).err().unwrap());
    assert!(e.contains("tokens 5..10 asked for after 0"), "{e}");
    let e = format!("{:#}", w.run(0..total + 1).err().unwrap());
    assert!(e.contains(&format!("of {total}")), "{e}");
    let run = w.run(0..10).unwrap();
    w.filled(run).unwrap();
    let e = format!("{:#}", w.finish().unwrap_err());
    assert!(
        e.contains(&format!("10 tokens written, {total} announced")),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "nothing left");

    let w = create(&p, &set, HashMap::new()).unwrap();
    assert_eq!(
        std::fs::read_dir(&d).unwrap().count(),
        1,
        "the temporary file"
    );
    drop(w);
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "removed on drop");

    // Lengths that disagree with the shape are refused before anything is written.
    let lengths = set.cells.iter().map(|c| c.len()).skip(1);
    let shape = CellsShape::of(&set);
    let e = RaggedWriter::create(&p, shape, lengths, Species::Mouse, None, HashMap::new())
        .err()
        .unwrap();
    let e = format!("{e:#}");
    assert!(e.contains(&format!("given for {} cells", set.len())), "{e}");
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "nothing written");
    let _ = std::fs::remove_dir_all(&d);
}
