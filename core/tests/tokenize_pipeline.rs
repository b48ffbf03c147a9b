//! Whole-pipeline check against the independent Python reference
//! (`tests/reference/tokenize_reference.py`) on real cells of `baron_mouse_pancreas_822.h5ad`,
//! read with the crate's own h5ad reader. Needs `../shared` beside the checkout.

use genecompass_core::data::{
    CellSource, CellTable, CsrChunk, DataError, GeneColumns, MatrixChoice, MatrixInfo, ObsColumn,
    open_path,
};
use genecompass_core::tokenize::*;
use serde_json::Value;
use std::path::Path;

const H5AD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/h5ad/baron_mouse_pancreas_822.h5ad"
);

/// The selected rows of another source, held in memory, with a `lib` column from the cell names.
struct Subset {
    info: MatrixInfo,
    genes: GeneColumns,
    cells: CellTable,
    rows: Vec<(Vec<u32>, Vec<f32>)>,
    pos: usize,
}

impl Subset {
    fn new(mut inner: Box<dyn CellSource>, rows: &[usize]) -> Self {
        let mut all = Vec::new();
        while let Some(c) = inner.next_chunk(256).unwrap() {
            for i in 0..c.n_cells() {
                let (idx, val) = c.cell(i);
                all.push((idx.to_vec(), val.to_vec()));
            }
        }
        let names: Vec<String> = rows
            .iter()
            .map(|&r| inner.cells().names[r].clone())
            .collect();
        let lib = names
            .iter()
            .map(|n| n.split('.').next().unwrap().to_string())
            .collect();
        let mut info = inner.info().clone();
        info.n_cells = rows.len();
        Subset {
            info,
            genes: inner.genes().clone(),
            cells: CellTable {
                names,
                columns: vec![("lib".into(), ObsColumn::Text(lib))],
            },
            rows: rows.iter().map(|&r| all[r].clone()).collect(),
            pos: 0,
        }
    }
}

impl CellSource for Subset {
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
        for (idx, val) in &self.rows[self.pos..end] {
            c.indices.extend(idx);
            c.data.extend(val);
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

fn load(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn baron_matches_python_reference() {
    assert!(
        Path::new(H5AD).exists(),
        "{H5AD} not found: the tests need ../shared beside the checkout"
    );
    let inputs = load("tokenize_baron_inputs.json");
    let expected = load("tokenize_baron_expected.json");
    let rows: Vec<usize> = inputs["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let vocab = TokenDictionary::from_json(
        inputs["token_dict"].to_string().as_bytes(),
        "inputs.token_dict",
    )
    .unwrap();
    let medians =
        GeneMedians::from_json(inputs["medians"].to_string().as_bytes(), "inputs.medians").unwrap();
    assert!(
        medians.medians.values().any(|m| m.is_nan()),
        "the fixture exercises a NaN median"
    );

    let configs = [
        (
            "official",
            TokenizeOptions {
                qc: CellQcOptions {
                    sample_column: Some("lib".into()),
                    ..Default::default()
                },
                chunk_cells: 7,
                ..Default::default()
            },
        ),
        (
            "normalize_total_1e4_max64_no_sample",
            TokenizeOptions {
                normalize_total: Some(1e4),
                max_len: Some(64),
                ..Default::default()
            },
        ),
        (
            "official_scipy_zero_variance",
            TokenizeOptions {
                qc: CellQcOptions {
                    sample_column: Some("lib".into()),
                    zero_variance: qc::ZeroVariance::DropLikeScipy,
                    ..Default::default()
                },
                ..Default::default()
            },
        ),
    ];
    for (name, opts) in configs {
        let src = open_path(Path::new(H5AD), MatrixChoice::Auto).unwrap();
        let mut sub = Subset::new(src, &rows);
        // The first pass predicts what the second writes (the streaming writer sizes its file
        // from it): same summary, cell count and longest cell.
        let plan = plan_tokenize(&mut sub, &vocab, &medians, &opts).unwrap();
        let predicted = (
            plan.summary(),
            plan.cells_out(),
            plan.longest(),
            plan.tokens(),
        );
        let (set, summary) = tokenize(&mut sub, &vocab, &medians, &opts).unwrap();
        let longest = set.cells.iter().map(|c| c.len()).max().unwrap_or(0);
        let tokens = set.cells.iter().map(|c| c.len()).sum();
        // Pass 2 pulled chunk by chunk (the browser worker's path) gives the same cells, and
        // every token is among those the plan announced (the embedding is folded for them).
        let small = TokenizeOptions {
            chunk_cells: 37,
            ..opts.clone()
        };
        let plan = plan_tokenize(&mut sub, &vocab, &medians, &small).unwrap();
        let ids = plan.token_ids();
        let mut stream = TokenizeStream::new(&mut sub, plan, &small).unwrap();
        let mut streamed = Vec::new();
        while let Some(chunk) = stream.next_cells().unwrap() {
            assert!(chunk.len() <= 37);
            streamed.extend(chunk);
        }
        assert_eq!(stream.written(), set.len(), "{name}");
        assert_eq!(streamed, set.cells, "{name}");
        // Pass 2 into the caller's memory (the ragged output's path): the same tokens end to
        // end, one run per chunk asked for in order and handed back in order.
        let plan = plan_tokenize(&mut sub, &vocab, &medians, &small).unwrap();
        let lengths: Vec<usize> = plan.written_lengths().collect();
        assert_eq!(
            lengths,
            set.cells.iter().map(|c| c.len()).collect::<Vec<_>>()
        );
        let stream = TokenizeStream::new(&mut sub, plan, &small).unwrap();
        let (mut asked, mut run_ids, mut values) = (Vec::new(), Vec::new(), Vec::new());
        let filled = stream
            .fill_ragged(
                &mut |run| {
                    asked.push(run.clone());
                    Ok((vec![u32::MAX; run.len()], vec![f32::NAN; run.len()]))
                },
                &mut |(i, v): (Vec<u32>, Vec<f32>)| {
                    run_ids.extend(i);
                    values.extend(v);
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(filled, summary, "{name}");
        assert!(asked.len() > 1, "{name}: {} runs", asked.len());
        assert!(asked.windows(2).all(|w| w[0].end == w[1].start), "{name}");
        assert_eq!(asked.last().unwrap().end, tokens, "{name}");
        let want: Vec<u32> = set.cells.iter().flat_map(|c| c.input_ids.clone()).collect();
        assert_eq!(run_ids, want, "{name}");
        let want: Vec<f32> = set.cells.iter().flat_map(|c| c.values.clone()).collect();
        assert_eq!(values, want, "{name}");
        assert!(
            streamed
                .iter()
                .flat_map(|c| &c.input_ids)
                .all(|t| ids.binary_search(t).is_ok()),
            "{name}"
        );
        assert_eq!(
            predicted,
            (summary.clone(), set.len(), longest, tokens),
            "{name}"
        );
        let exp = &expected[name];
        let q = &exp["qc"];
        assert_eq!(
            summary.qc.cells_in as u64,
            q["cells_in"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            summary.qc.after_nonzero_total as u64,
            q["after_nonzero_total"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            summary.qc.after_zscore as u64,
            q["after_zscore"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            summary.qc.after_min_genes as u64,
            q["after_min_genes"].as_u64().unwrap(),
            "{name}"
        );
        let cells = exp["cells"].as_array().unwrap();
        assert_eq!(set.len(), cells.len(), "{name}");
        let (mut n_tokens, mut max_diff) = (0usize, 0f64);
        for (got, want) in set.cells.iter().zip(cells) {
            let ids: Vec<u32> = want["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(got.input_ids, ids, "{name}: row {}", want["row"]);
            for (g, w) in got.values.iter().zip(want["values"].as_array().unwrap()) {
                max_diff = max_diff.max((*g as f64 - w.as_f64().unwrap()).abs());
            }
            n_tokens += ids.len();
        }
        assert!(max_diff <= 1e-6, "{name}: max |value diff| {max_diff}");
        eprintln!(
            "{name}: {} cells, {n_tokens} tokens identical, max |value diff| {max_diff:.2e}; genes matched {} of {}, \
             count share {:.4}",
            set.len(),
            summary.genes.matched_to_vocabulary,
            summary.genes.genes_in_file,
            summary.genes.matched_count_share
        );
    }
}

/// A file rewritten between the two passes: from the second pass on, every cell loses its
/// last stored gene.
struct ChangesAfterFirstPass {
    inner: Subset,
    rewinds: u32,
}

impl CellSource for ChangesAfterFirstPass {
    fn info(&self) -> &MatrixInfo {
        self.inner.info()
    }
    fn genes(&self) -> &GeneColumns {
        self.inner.genes()
    }
    fn cells(&self) -> &CellTable {
        self.inner.cells()
    }
    fn next_chunk(&mut self, max_cells: usize) -> Result<Option<CsrChunk>, DataError> {
        let Some(c) = self.inner.next_chunk(max_cells)? else {
            return Ok(None);
        };
        if self.rewinds < 2 {
            return Ok(Some(c));
        }
        let mut out = CsrChunk {
            first_cell: c.first_cell,
            indptr: vec![0],
            ..Default::default()
        };
        for i in 0..c.n_cells() {
            let (idx, val) = c.cell(i);
            let keep = idx.len().saturating_sub(1);
            out.indices.extend(&idx[..keep]);
            out.data.extend(&val[..keep]);
            out.indptr.push(out.indices.len());
        }
        Ok(Some(out))
    }
    fn rewind(&mut self) -> Result<(), DataError> {
        self.rewinds += 1;
        self.inner.rewind()
    }
}

#[test]
fn a_file_changed_between_passes_is_an_error_not_a_wrong_output() {
    let inputs = load("tokenize_baron_inputs.json");
    let rows: Vec<usize> = inputs["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let vocab = TokenDictionary::from_json(
        inputs["token_dict"].to_string().as_bytes(),
        "inputs.token_dict",
    )
    .unwrap();
    let medians =
        GeneMedians::from_json(inputs["medians"].to_string().as_bytes(), "inputs.medians").unwrap();
    let src = open_path(Path::new(H5AD), MatrixChoice::Auto).unwrap();
    let mut changing = ChangesAfterFirstPass {
        inner: Subset::new(src, &rows),
        rewinds: 0,
    };
    let opts = TokenizeOptions::default();
    let plan = plan_tokenize(&mut changing, &vocab, &medians, &opts).unwrap();
    let planned = plan.cells_out();
    assert!(planned > 0);
    let mut reached_sink = 0;
    let e = tokenize_each(&mut changing, plan, &opts, &mut |_| {
        reached_sink += 1;
        Ok(())
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("changed while it was being tokenized"), "{e}");
    assert!(e.contains("tokens"), "{e}");
    // Cells before the first changed one were written; the run stops at that one.
    assert!(
        reached_sink < planned,
        "{reached_sink} of {planned} cells reached the output"
    );
    // The same into the caller's memory.
    let mut changing = ChangesAfterFirstPass {
        inner: Subset::new(
            open_path(Path::new(H5AD), MatrixChoice::Auto).unwrap(),
            &rows,
        ),
        rewinds: 0,
    };
    let plan = plan_tokenize(&mut changing, &vocab, &medians, &opts).unwrap();
    let e = TokenizeStream::new(&mut changing, plan, &opts)
        .unwrap()
        .fill_ragged(
            &mut |run| Ok((vec![0u32; run.len()], vec![0f32; run.len()])),
            &mut |_| Ok(()),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("changed while it was being tokenized"), "{e}");
    assert!(e.contains("tokens"), "{e}");
}
