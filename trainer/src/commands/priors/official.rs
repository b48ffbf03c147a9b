//! `priors load-official`: official `prior_knowledge/` pickles → compact store.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use genecompass_core::priors::official::{
    DirFiles, OfficialLayout, PriorFileSource, load_official,
};
use genecompass_core::priors::store::{self, InputRecord, PriorEntry};

use super::bar;

/// Arguments of `priors load-official`.
#[derive(Args, Debug)]
pub struct LoadOfficialArgs {
    /// The official `prior_knowledge/` folder (after `git lfs pull`).
    #[arg(long)]
    pub prior_dir: PathBuf,
    /// Token dictionary to use instead of `prior_knowledge/human_mouse_tokens.pickle`
    /// (pickle or JSON).
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    pub output: PathBuf,
}

/// Loads the official files exactly as the official loader does and writes the compact store.
pub fn run(a: LoadOfficialArgs) -> anyhow::Result<()> {
    if !a.prior_dir.is_dir() {
        bail!(
            "{}: not a folder; pass the official prior_knowledge/ folder",
            a.prior_dir.display()
        );
    }
    let source = DirFiles(a.prior_dir.clone());
    let mut layout = OfficialLayout::default().resolve(&source);
    if let Some(v) = &a.vocab {
        layout.token_dict = std::path::absolute(v)?.display().to_string();
    }
    let b = bar(10, "reading official pickles");
    let tables = load_official(&source, &layout, &mut |i, _, what| {
        b.set_position(i as u64);
        b.set_message(what.to_string());
    })?;
    b.finish_and_clear();
    // Hash every input (the files were read once by the loader; hashing re-reads them).
    let mut files = vec![
        layout.token_dict.clone(),
        layout.id_to_symbol.clone(),
        layout.homologs.clone(),
    ];
    for (_, h, m) in &layout.priors {
        files.push(h.clone());
        files.push(m.clone());
    }
    let inputs: Vec<InputRecord> = files
        .iter()
        .map(|f| {
            source
                .read(f)
                .map(|(name, bytes)| InputRecord::of(name, &bytes))
        })
        .collect::<Result<_, _>>()?;
    let (_, vocab_bytes) = source.read(&layout.token_dict)?;
    let vocab =
        genecompass_core::tokenize::TokenDictionary::from_bytes(&vocab_bytes, &layout.token_dict)?;
    let genes = vocab.tokens().to_vec();
    for (kind, data) in &tables.tables {
        let entry = PriorEntry {
            kind: *kind,
            file: String::new(),
            sha256: String::new(),
            rows: 0,
            width: 0,
            builder: "load-official".into(),
            seed: None,
            parameters: serde_json::json!({"loader": "genecompass/utils.py:load_prior_embedding (pad/mask rows zero, float64 cast to float32)"}),
            inputs: inputs.clone(),
            stats: serde_json::json!({}),
        };
        let e = store::write_prior(&a.output, &genes, tables.width, data, entry)?;
        println!(
            "wrote {} [{} × {}] sha256 {}…",
            e.file,
            e.rows,
            e.width,
            &e.sha256[..12]
        );
    }
    store::write_homologous_index(&a.output, &genes, &tables.homologous_index)?;
    let mapped = tables
        .homologous_index
        .iter()
        .enumerate()
        .filter(|(i, h)| *i as i64 != **h)
        .count();
    println!(
        "wrote {} ({mapped} mouse tokens mapped to human) and {} in {}",
        store::HOMOLOGS,
        store::MANIFEST,
        a.output.display()
    );
    Ok(())
}
