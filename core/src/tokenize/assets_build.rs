//! Builds the embedded gene tables (`core/assets/*.tsv.gz`) from the developer data bundle's
//! `genes/` folder. Native only; never called by the browser.

use super::TokenizeError;
use super::gene_tables::gunzip;
use std::io::Write;

/// Splits one CSV line, honouring double quotes.
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn read_gz(path: &std::path::Path) -> Result<String, TokenizeError> {
    gunzip(&super::read_path(path)?, &path.display().to_string())
}

fn column(header: &[String], name: &str, file: &str) -> Result<usize, TokenizeError> {
    header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| TokenizeError::Invalid {
            file: file.into(),
            message: format!("column {name:?} not found (header: {header:?})"),
        })
}

fn nomenclature_tsv(path: &std::path::Path) -> Result<String, TokenizeError> {
    let file = path.display().to_string();
    let text = read_gz(path)?;
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split('\t')
        .map(String::from)
        .collect();
    let c = |n| column(&header, n, &file);
    let (ce, cs, ca, cp, cb) = (
        c("ensembl_id")?,
        c("symbol")?,
        c("alias_symbols")?,
        c("prev_symbols")?,
        c("canonical_biotype")?,
    );
    let mut rows: Vec<String> = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("").trim();
        let ens = get(ce);
        if ens.is_empty() {
            continue; // genes without an Ensembl id cannot be tokenized (the vocabulary is Ensembl-keyed)
        }
        rows.push(format!(
            "{ens}\t{}\t{}\t{}\t{}",
            get(cs),
            get(cp),
            get(ca),
            get(cb)
        ));
    }
    rows.sort();
    Ok(format!(
        "ensembl_id\tsymbol\tprev_symbols\talias_symbols\tbiotype\n{}\n",
        rows.join("\n")
    ))
}

fn orthologs_tsv(
    hcop: &std::path::Path,
    biomart: &std::path::Path,
) -> Result<String, TokenizeError> {
    use std::collections::BTreeMap;
    let mut pairs: BTreeMap<(String, String), (u8, String)> = BTreeMap::new();
    let (hf, bf) = (hcop.display().to_string(), biomart.display().to_string());
    let text = read_gz(hcop)?;
    let mut lines = text.lines();
    let header = csv_fields(lines.next().unwrap_or(""));
    let (ch, cm, cs) = (
        column(&header, "Gene stable ID", &hf)?,
        column(&header, "Mouse gene stable ID", &hf)?,
        column(&header, "supporting_source", &hf)?,
    );
    for line in lines {
        let f = csv_fields(line);
        let (h, m) = (f[ch].trim(), f[cm].trim());
        if h.starts_with("ENSG") && m.starts_with("ENSMUSG") {
            let n = f[cs]
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .count()
                .min(255) as u8;
            let e = pairs.entry((h.into(), m.into())).or_default();
            e.0 = e.0.max(n);
        }
    }
    let text = read_gz(biomart)?;
    let mut lines = text.lines();
    let header = csv_fields(lines.next().unwrap_or(""));
    let (ch, cm, ct) = (
        column(&header, "Gene stable ID", &bf)?,
        column(&header, "Mouse gene stable ID", &bf)?,
        column(&header, "Mouse homology type", &bf)?,
    );
    for line in lines {
        let f = csv_fields(line);
        let (h, m) = (f[ch].trim(), f[cm].trim());
        if h.starts_with("ENSG") && m.starts_with("ENSMUSG") {
            pairs.entry((h.into(), m.into())).or_default().1 = f[ct].trim().into();
        }
    }
    let mut s = String::from("human_ensembl\tmouse_ensembl\thcop_sources\tbiomart_type\n");
    for ((h, m), (n, t)) in pairs {
        s.push_str(&format!("{h}\t{m}\t{n}\t{t}\n"));
    }
    Ok(s)
}

fn write_gz(path: &std::path::Path, text: &str) -> Result<u64, TokenizeError> {
    let io = |error| TokenizeError::Io {
        path: path.display().to_string(),
        error,
    };
    // No file name and mtime 0: byte-reproducible output.
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(text.as_bytes()).map_err(io)?;
    let bytes = enc.finish().map_err(io)?;
    std::fs::write(path, &bytes).map_err(io)?;
    Ok(bytes.len() as u64)
}

/// Derives the compact embedded tables from the developer bundle's `genes/` folder into `out_dir`:
/// `human_genes.tsv.gz` (HGNC), `mouse_genes.tsv.gz` (MGI) — rows with an Ensembl id only — and
/// `human_mouse_orthologs.tsv.gz` (HCOP ∪ BioMart pairs). Returns `(file name, bytes)` written.
pub fn build_assets(
    genes_dir: &std::path::Path,
    out_dir: &std::path::Path,
) -> Result<Vec<(String, u64)>, TokenizeError> {
    let human = nomenclature_tsv(&genes_dir.join("hgnc_human_gene_table.tsv.gz"))?;
    let mouse = nomenclature_tsv(&genes_dir.join("mgi_mouse_gene_table.tsv.gz"))?;
    let ortho = orthologs_tsv(
        &genes_dir.join("hcop_human_to_mouse.csv.gz"),
        &genes_dir.join("biomart_human_to_mouse.csv.gz"),
    )?;
    let mut out = Vec::new();
    for (name, text) in [
        ("human_genes.tsv.gz", human),
        ("mouse_genes.tsv.gz", mouse),
        ("human_mouse_orthologs.tsv.gz", ortho),
    ] {
        let n = write_gz(&out_dir.join(name), &text)?;
        out.push((name.to_string(), n));
    }
    Ok(out)
}
