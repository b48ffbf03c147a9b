//! `genecompass-train tokenize / medians / vocab` on the real files of `shared/data`, run as the
//! built binary. They need `../shared` beside the checkout.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use genecompass_core::cells::hf_dataset::read_hf_dataset;
use genecompass_core::checkpoint::TensorMap;

fn data(rel: &str) -> Option<PathBuf> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data");
    let p = Path::new(root).join(rel);
    assert!(
        p.exists(),
        "{} not found: the tests need ../shared beside the checkout",
        p.display()
    );
    Some(p)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gc-tokenize-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_genecompass-train"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// `tokenize INPUT --output OUT --build-vocab` and `extra`.
fn tokenize_built_vocab(input: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["tokenize", s(input), "--output", s(out), "--build-vocab"];
    args.extend_from_slice(extra);
    run(&args)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The number from a summary line such as `  kept, > 6 expressed genes: 815`.
fn summary_number(out: &str, key: &str) -> usize {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(key))
        .unwrap_or_else(|| panic!("no line {key:?} in:\n{out}"));
    line.rsplit(':')
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn baron_mouse_build_vocab_safetensors() {
    let Some(input) = data("h5ad/baron_mouse_pancreas_822.h5ad") else {
        return;
    };
    let dir = tmpdir("baron");
    let out = dir.join("baron.safetensors");
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&out),
        "--build-vocab",
        "--label-column",
        "cell_type",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // The report, up front.
    for want in [
        "format:",
        "matrix:           X",
        "cells x genes:    822 x 14878",
        "species:          mouse",
        "symbol tables",
        "gene identifiers: symbols",
        "genes in vocab:",
        "count share:",
        "NOT compatible with official",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
    // Coverage comes after the QC pass and before the tokens are written.
    assert!(
        t.find("count share:") < t.find("summary:"),
        "coverage after the summary in:\n{t}"
    );
    assert_eq!(summary_number(&t, "cells in:"), 822);
    let kept = summary_number(&t, "written:");
    assert!(kept > 700 && kept <= 822, "{kept} cells kept\n{t}");

    // The dictionary written beside the output.
    let vocab_path = dir.join("baron.token_dict.json");
    let vocab: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&vocab_path).unwrap()).unwrap();
    assert_eq!(vocab["<pad>"], 0);
    assert_eq!(vocab["<mask>"], 1);
    assert!(vocab.len() > 10_000, "{} tokens", vocab.len());
    assert!(vocab.keys().skip(2).all(|k| k.starts_with("ENSMUSG")));

    // Read back: shapes, padding, order.
    let map = TensorMap::read_safetensors(&out).unwrap();
    let ids_t = &map.tensors["input_ids"];
    let (n, l) = (ids_t.shape[0], ids_t.shape[1]);
    assert_eq!(n, kept);
    assert!(l <= 2048);
    assert_eq!(map.tensors["values"].shape, vec![n, l]);
    assert_eq!(map.tensors["attention_mask"].shape, vec![n, l]);
    assert_eq!(map.tensors["species"].shape, vec![n, 1]);
    assert_eq!(map.tensors["lengths"].shape, vec![n]);
    let ids = ids_t.to_i64().unwrap();
    let vals = map.tensors["values"].to_f32().unwrap();
    let mask = map.tensors["attention_mask"].to_i64().unwrap();
    let lens = map.tensors["lengths"].to_i64().unwrap();
    assert!(
        map.tensors["species"]
            .to_i64()
            .unwrap()
            .iter()
            .all(|&v| v == 1)
    );
    for i in 0..n {
        let len = lens[i] as usize;
        let row = &ids[i * l..(i + 1) * l];
        let v = &vals[i * l..(i + 1) * l];
        assert!(len > 6);
        assert!(
            row[..len]
                .iter()
                .all(|&t| t > 1 && (t as usize) < vocab.len())
        );
        assert!(row[len..].iter().all(|&t| t == 0));
        assert!(v[len..].iter().all(|&x| x == 0.0));
        assert!(mask[i * l..i * l + len].iter().all(|&m| m == 1));
        assert!(mask[i * l + len..(i + 1) * l].iter().all(|&m| m == 0));
        // Ranked by value, descending.
        assert!(
            v[..len].windows(2).all(|w| w[0] >= w[1]),
            "cell {i} not sorted"
        );
        assert!(v[..len].iter().all(|&x| x > 0.0));
    }

    // Labels in the metadata: one per written cell, from the 13 Baron types.
    let bytes = std::fs::read(&out).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let labels: Vec<String> = serde_json::from_str(&meta["labels"]).unwrap();
    assert_eq!(labels.len(), n);
    assert!(labels.iter().any(|l| l == "beta"));
    assert_eq!(meta["label_column"], "cell_type");
    assert_eq!(meta["medians_sha256"], "none");
    assert_eq!(meta["vocab_sha256"].len(), 64);
    let summary: serde_json::Value = serde_json::from_str(&meta["summary"]).unwrap();
    assert_eq!(summary["qc"]["cells_in"], 822);
    assert_eq!(summary["cells_out"], n);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn medians_then_tokenize_hf_format_reads_back() {
    let Some(input) = data("h5ad/baron_mouse_pancreas_822.h5ad") else {
        return;
    };
    let dir = tmpdir("hf");
    let vocab = dir.join("token_dict.json");
    let o = run(&["vocab", "--species", "human,mouse", "--output", s(&vocab)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("human") && text(&o).contains("mouse"));

    let medians = dir.join("medians.json");
    let o = run(&[
        "medians",
        s(&input),
        "--token-dict",
        s(&vocab),
        "--output",
        s(&medians),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let m: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&medians).unwrap()).unwrap();
    assert!(m.len() > 5000, "{} medians", m.len());
    assert!(m.keys().all(|k| k.starts_with("ENSMUSG")));
    assert!(m.values().all(|v| v.as_f64().unwrap() > 0.0));

    // Approximate mode lands within the histogram's bound of the exact medians.
    let approx = dir.join("medians_approx.json");
    let o = run(&[
        "medians",
        s(&input),
        "--token-dict",
        s(&vocab),
        "--output",
        s(&approx),
        "--approx",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let a: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&approx).unwrap()).unwrap();
    assert_eq!(a.len(), m.len());
    for (k, v) in &m {
        let (e, x) = (v.as_f64().unwrap(), a[k].as_f64().unwrap());
        // Even counts average two bins, so allow twice the per-bin bound.
        assert!((x / e - 1.0).abs() < 0.011, "{k}: exact {e}, approx {x}");
    }

    let out = dir.join("baron_hf");
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&out),
        "--token-dict",
        s(&vocab),
        "--medians",
        s(&medians),
        "--label-column",
        "cell_type",
        "--format",
        "hf",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // Baron's symbols without an MGI entry, named with their counts before the summary.
    let unmatched = t
        .lines()
        .find(|l| l.starts_with("top unmatched:"))
        .unwrap_or_else(|| panic!("no unmatched genes named in:\n{t}"));
    assert!(unmatched.contains(" ("), "{unmatched}");
    assert!(t.find("top unmatched:") < t.find("summary:"), "{t}");
    let kept = summary_number(&t, "written:");
    let cells = read_hf_dataset(&out, Some("cell_type")).unwrap();
    assert_eq!(cells.len(), kept);
    assert_eq!(cells.padded_len, Some(2048));
    for c in &cells.cells {
        assert!(c.len() <= 2048 && c.len() > 6);
        assert!(c.values.windows(2).all(|w| w[0] >= w[1]));
        assert!(c.label.is_some());
    }
    // The dictionary and the medians that made the tokens, by hash.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("genecompass_tokenize.json")).unwrap())
            .unwrap();
    for key in ["vocab_sha256", "medians_sha256"] {
        let h = meta[key].as_str().unwrap_or_default();
        assert!(
            h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key} = {h:?}"
        );
    }
    assert_ne!(meta["vocab_sha256"], meta["medians_sha256"]);
    assert_eq!(meta["options"]["medians"], s(&medians));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ragged_layout_holds_the_same_cells_smaller() {
    let Some(input) = data("h5ad/baron_mouse_pancreas_822.h5ad") else {
        return;
    };
    let dir = tmpdir("ragged");
    let mut sets = Vec::new();
    for layout in ["padded", "ragged"] {
        let out = dir.join(format!("{layout}.safetensors"));
        let o = run(&[
            "tokenize",
            s(&input),
            "--output",
            s(&out),
            "--build-vocab",
            "--label-column",
            "cell_type",
            "--layout",
            layout,
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let size = std::fs::metadata(&out).unwrap().len();
        let (cells, _) = genecompass_trainer::cells_io::read_cells_file(&out).unwrap();
        sets.push((cells, size));
    }
    let ((padded, padded_size), (ragged, ragged_size)) = (&sets[0], &sets[1]);
    assert_eq!(padded.len(), ragged.len());
    for (a, b) in padded.cells.iter().zip(&ragged.cells) {
        assert_eq!(
            (&a.input_ids, &a.values, a.species, &a.label),
            (&b.input_ids, &b.values, b.species, &b.label)
        );
    }
    assert!(
        ragged_size * 2 < *padded_size,
        "ragged {ragged_size} B vs padded {padded_size} B"
    );

    // The dataset-folder format is always padded.
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&dir.join("hf")),
        "--build-vocab",
        "--format",
        "hf",
        "--layout",
        "ragged",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--layout ragged applies to safetensors"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn log_normalised_file_says_what_to_do() {
    let Some(input) = data("h5ad/spectra_immune_1000.h5ad") else {
        return;
    };
    let dir = tmpdir("lognorm");
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&dir.join("x.safetensors")),
        "--build-vocab",
    ]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("does not hold raw counts"), "{t}");
    // Its only matrix is X: no use suggesting another.
    assert!(
        t.contains("no matrix of this file holds raw counts") && !t.contains("--matrix raw"),
        "wrong advice in:\n{t}"
    );
    assert!(!dir.join("x.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// pbmc68k keeps scaled values in `X` and log-normalised ones in `raw.X`, no counts: every
/// choice is refused, each with what the file holds.
#[test]
fn file_without_any_counts_is_refused_with_what_it_holds() {
    let Some(input) = data("h5ad/pbmc68k_reduced.h5ad") else {
        return;
    };
    let dir = tmpdir("pbmc68k");
    let out = dir.join("x.safetensors");
    let tokenize = |extra: &[&str]| {
        let o = tokenize_built_vocab(&input, &out, extra);
        let t = text(&o);
        assert!(!o.status.success(), "{t}");
        assert!(!out.exists());
        t
    };
    let t = tokenize(&[]);
    assert!(t.contains("no matrix looks like raw counts"), "{t}");
    assert!(t.contains("X: ") && t.contains("raw.X: "), "{t}");
    assert!(t.contains("no matrix of this file holds raw counts"), "{t}");
    let t = tokenize(&["--matrix", "raw"]);
    assert!(
        t.contains("the matrix `raw.X` does not hold raw counts"),
        "{t}"
    );
    assert!(t.contains("--matrix auto"), "{t}");
    let t = tokenize(&["--matrix", "layer:counts"]);
    assert!(
        t.contains("no layer `counts`") && t.contains("raw.X"),
        "{t}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = tmpdir("bad");
    let out = dir.join("x.safetensors");

    // Missing file.
    let o = run(&[
        "tokenize",
        s(&dir.join("missing.h5ad")),
        "--output",
        s(&out),
        "--build-vocab",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no such file"), "{}", text(&o));

    let Some(input) = data("h5ad/baron_mouse_pancreas_822.h5ad") else {
        return;
    };
    // No dictionary and no --build-vocab.
    let o = run(&["tokenize", s(&input), "--output", s(&out)]);
    let t = text(&o);
    assert!(!o.status.success());
    assert!(
        t.contains("--token-dict") && t.contains("--build-vocab") && t.contains("vocab"),
        "{t}"
    );

    // A Git LFS pointer instead of the pickle.
    let lfs = dir.join("human_mouse_tokens.pickle");
    std::fs::write(
        &lfs,
        "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 1144041\n",
    )
    .unwrap();
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&out),
        "--token-dict",
        s(&lfs),
    ]);
    let t = text(&o);
    assert!(!o.status.success());
    assert!(t.contains("Git LFS pointer"), "{t}");

    // No known genes: a mouse file against a human-only dictionary.
    let human = dir.join("human.json");
    let o = run(&["vocab", "--species", "human", "--output", s(&human)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&out),
        "--token-dict",
        s(&human),
    ]);
    let t = text(&o);
    assert!(!o.status.success());
    assert!(t.contains("no known genes"), "{t}");
    // Unless asked to fall back on human orthologs (not official), which the report counts.
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&out),
        "--token-dict",
        s(&human),
        "--ortholog-fallback",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let mapped = t
        .lines()
        .find(|l| l.starts_with("genes -> Ensembl:"))
        .unwrap();
    let orthologs: usize = mapped
        .split("ortholog ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ortholog count in {mapped:?}"));
    assert!(orthologs > 10_000, "{mapped}");
    assert!(t.contains("species:          mouse"), "{t}");
    let (cells, _) = genecompass_trainer::cells_io::read_cells_file(&out).unwrap();
    assert!(cells.len() > 700, "{} cells", cells.len());
    assert!(
        cells
            .cells
            .iter()
            .all(|c| c.species == genecompass_core::cells::Species::Mouse)
    );
    std::fs::remove_file(&out).unwrap();

    // A label column that does not exist lists the available ones.
    let o = run(&[
        "tokenize",
        s(&input),
        "--output",
        s(&out),
        "--build-vocab",
        "--label-column",
        "celltype",
    ]);
    let t = text(&o);
    assert!(!o.status.success());
    assert!(t.contains("cell_type"), "{t}");
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--genome` reads one genome of a mixed 10x `.h5`; `--orientation` forces a table's axes.
#[test]
fn input_flags_choose_genome_and_table_orientation() {
    let Some(h5) = data("10x/1.2.0/multiple_genomes.h5") else {
        return;
    };
    let dir = tmpdir("input-flags");
    let out = dir.join("x.safetensors");
    let tokenize = |input: &Path, extra: &[&str]| text(&tokenize_built_vocab(input, &out, extra));
    // Both genomes side by side, with a warning that says how to read one.
    let t = tokenize(&h5, &[]);
    assert!(t.contains(" x 686\n"), "{t}");
    assert!(t.contains("--genome NAME"), "{t}");
    let t = tokenize(&h5, &["--genome", "hg19_chr21"]);
    assert!(
        t.contains(" x 343\n") && !t.contains("--genome NAME"),
        "{t}"
    );
    let t = tokenize(&h5, &["--genome", "mm10"]);
    assert!(
        t.contains("no genome `mm10`") && t.contains("hg19_chr21"),
        "{t}"
    );

    // Baron's first 40 cells as a genes x cells TSV (R / Seurat orientation).
    let Some(baron) = data("h5ad/baron_mouse_pancreas_822.h5ad") else {
        return;
    };
    let mut src = genecompass_core::data::open_path(&baron, Default::default()).unwrap();
    let genes = src.genes().names.clone();
    let chunk = src.next_chunk(40).unwrap().unwrap();
    let mut rows = vec![vec![0f32; chunk.n_cells()]; genes.len()];
    for (c, (idx, val)) in (0..chunk.n_cells()).map(|c| chunk.cell(c)).enumerate() {
        for (&g, &v) in idx.iter().zip(val) {
            rows[g as usize][c] = v;
        }
    }
    let mut tsv = String::from("gene");
    for c in 0..chunk.n_cells() {
        tsv.push_str(&format!("\tcell{c}"));
    }
    tsv.push('\n');
    for (g, row) in genes.iter().zip(&rows) {
        tsv.push_str(g);
        for v in row {
            tsv.push_str(&format!("\t{v}"));
        }
        tsv.push('\n');
    }
    let table = dir.join("baron_genes_by_cells.tsv");
    std::fs::write(&table, tsv).unwrap();
    let t = tokenize(&table, &[]);
    assert!(t.contains("genes × cells (detected from names)"), "{t}");
    assert_eq!(summary_number(&t, "cells in:"), 40, "{t}");
    let t = tokenize(&table, &["--orientation", "genes-by-cells"]);
    assert!(t.contains("(as requested)"), "{t}");
    assert_eq!(summary_number(&t, "cells in:"), 40, "{t}");
    // Forced the wrong way round, the cell names are taken for genes: none is known, and the
    // species cannot be told from them.
    let t = tokenize(&table, &["--orientation", "cells-by-genes"]);
    assert!(t.contains("cells × genes (as requested)"), "{t}");
    assert!(
        t.contains("none of the 40 gene names") && t.contains("\"cell0\""),
        "{t}"
    );
    let t = tokenize(
        &table,
        &["--orientation", "cells-by-genes", "--species", "mouse"],
    );
    assert!(t.contains("no known genes"), "{t}");
    let _ = std::fs::remove_dir_all(&dir);
}
