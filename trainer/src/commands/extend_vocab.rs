//! `extend-vocab`: add genes to an existing model (new rows in the word, knowledge and homolog
//! tables; every existing weight and token id kept), writing a new model directory.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use burn::prelude::*;
use clap::Args;
use genecompass_core::checkpoint::{
    WeightsFormat, export_official_safetensors, load_checkpoint, save_native,
};
use genecompass_core::model::PriorKind;
use genecompass_core::model::extend::{VocabExtension, add_species, extend_checkpoint};
use genecompass_core::priors::store::{read_genes, read_prior};
use genecompass_core::tokenize::gene_tables::SymbolRule;
use genecompass_core::tokenize::{NameHit, Orthologs, TokenDictionary, resolve_gene_name};

use super::gene_args::{find_token_dict, gene_names, symbol_of};
use super::tokenize::load_token_dict;

/// Arguments of `extend-vocab`.
#[derive(Args, Debug)]
pub struct ExtendVocabArgs {
    /// Model directory (official or native).
    #[arg(long, value_name = "DIR", visible_alias = "checkpoint")]
    pub model: PathBuf,
    /// Its token dictionary (default: the one in the model directory).
    #[arg(long, value_name = "F")]
    pub token_dict: Option<PathBuf>,
    /// Genes to add: Ensembl ids (human or mouse) or current HGNC/MGI symbols.
    #[arg(long, num_args = 1.., value_delimiter = ',', value_name = "GENE")]
    pub genes: Vec<String>,
    /// File with one gene per line (first tab/comma column; `#` comments).
    #[arg(long, value_name = "F")]
    pub genes_file: Option<PathBuf>,
    /// Prior-knowledge stores (`genecompass-train priors build-*` output folders) holding
    /// vectors for the new genes; repeatable. New genes without a vector get zero rows.
    #[arg(long = "priors", value_name = "DIR")]
    pub priors: Vec<PathBuf>,
    /// Add a species (e.g. `rat`): a new row in the species CLS table, so cells of that
    /// species get their own species token. Its code is printed and recorded; tokenize its
    /// cells with `--species CODE`.
    #[arg(long, value_name = "NAME")]
    pub add_species: Option<String>,
    /// The new species' genes: a TSV/CSV whose first column is the gene id as the species'
    /// files name it (e.g. `ENSRNOG00000000001`; taken verbatim, version suffix dropped) and an
    /// optional second column its human ortholog (Ensembl id or current HGNC symbol), through
    /// which its prior-knowledge vectors are looked up. Requires --add-species.
    #[arg(long, value_name = "F", requires = "add_species")]
    pub species_genes: Option<PathBuf>,
    /// Seed of the new word-embedding rows.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// New model directory (must not exist yet).
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
}

/// An Ensembl id for a name, or why not.
fn to_ensembl(name: &str) -> Result<String, String> {
    match resolve_gene_name(name, None) {
        NameHit::Ensembl(id)
        | NameHit::Symbol {
            ensembl: id,
            rule: SymbolRule::Current,
            ..
        } => Ok(id),
        NameHit::Symbol { ensembl, .. } => Err(format!(
            "{name} is not a current symbol (it is an alias or previous symbol of {ensembl}); \
             pass the Ensembl id"
        )),
        NameHit::Ambiguous(ids) => Err(format!(
            "{name} is ambiguous ({}); pass the Ensembl id",
            ids.join(", ")
        )),
        NameHit::Unknown => Err(format!(
            "unknown gene {name:?}: not an Ensembl id nor a current HGNC/MGI symbol"
        )),
    }
}

/// Rows of a `--species-genes` file: (gene id, optional human ortholog).
fn read_species_genes(path: &std::path::Path) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --species-genes {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut cols = line.split(['\t', ',']).map(str::trim);
        let gene = cols.next().unwrap_or_default();
        let gene = match gene.rsplit_once('.') {
            Some((b, v)) if !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()) => b,
            _ => gene,
        };
        if i == 0 && (gene.eq_ignore_ascii_case("gene_id") || gene.eq_ignore_ascii_case("gene")) {
            continue; // header
        }
        if gene.is_empty() || gene.chars().any(char::is_whitespace) {
            bail!(
                "{} line {}: no gene id in the first column",
                path.display(),
                i + 1
            );
        }
        let human = cols.next().filter(|h| !h.is_empty()).map(String::from);
        out.push((gene.to_string(), human));
    }
    if out.is_empty() {
        bail!("{}: no genes in it", path.display());
    }
    Ok(out)
}

/// Runs the extension.
pub fn run(args: ExtendVocabArgs) -> anyhow::Result<()> {
    if args.output.exists() {
        bail!(
            "--output {} already exists; pick a new folder",
            args.output.display()
        );
    }
    let names = if args.genes.is_empty() && args.genes_file.is_none() && args.add_species.is_some()
    {
        Vec::new() // a species with only its --species-genes (or none)
    } else {
        gene_names(&args.genes, args.genes_file.as_deref())?
    };
    let device = Device::flex();
    let ck = load_checkpoint(&args.model, WeightsFormat::Auto, &device)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let dict_path = match &args.token_dict {
        Some(p) => p.clone(),
        None => find_token_dict(&args.model)?,
    };
    let vocab = load_token_dict(&dict_path)?;
    if vocab.len() != ck.config.vocab_size {
        bail!(
            "{} has {} tokens but the model's vocab_size is {}: pass the model's own --token-dict",
            dict_path.display(),
            vocab.len(),
            ck.config.vocab_size
        );
    }
    let mut errors = Vec::new();
    let mut new: Vec<String> = Vec::new();
    let mut present = Vec::new();
    // Human ortholog (Ensembl id) of each new gene of an added species.
    let mut ortholog_of: HashMap<String, String> = HashMap::new();
    if let Some(f) = &args.species_genes {
        for (gene, human) in read_species_genes(f)? {
            if vocab.get(&gene).is_some() {
                present.push(gene);
                continue;
            }
            if let Some(h) = human {
                match to_ensembl(&h) {
                    Ok(id) if id.starts_with("ENSG") => {
                        ortholog_of.insert(gene.clone(), id);
                    }
                    Ok(id) => errors.push(format!(
                        "{}: the ortholog of {gene}, {h} ({id}), is not a human gene",
                        f.display()
                    )),
                    Err(e) => errors.push(format!("{}: ortholog of {gene}: {e}", f.display())),
                }
            }
            if !new.contains(&gene) {
                new.push(gene);
            }
        }
    }
    for n in &names {
        match to_ensembl(n) {
            Ok(id) if vocab.get(&id).is_some() => present.push(id),
            Ok(id) if !new.contains(&id) => new.push(id),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    if !present.is_empty() {
        eprintln!("already in the vocabulary, skipped: {}", present.join(", "));
    }
    if new.is_empty() && args.add_species.is_none() {
        bail!("no new gene to add: every gene given is already in the model's vocabulary");
    }
    let v0 = vocab.len();
    let n = new.len();
    let k = ck.config.knowledge_size.unwrap_or(0);
    let k = if k > 0 {
        k
    } else {
        ck.bert().embeddings.priors[0].knowledge.dims()[1]
    };
    // Knowledge rows from the stores given, kind by kind.
    let mut knowledge = vec![vec![0f32; n * k]; PriorKind::ALL.len()];
    let mut covered = vec![0usize; PriorKind::ALL.len()];
    for dir in &args.priors {
        let genes =
            read_genes(dir).with_context(|| format!("reading --priors {}", dir.display()))?;
        let row_of: HashMap<&str, usize> = genes
            .iter()
            .enumerate()
            .map(|(i, g)| (g.as_str(), i))
            .collect();
        for (ki, kind) in PriorKind::ALL.iter().enumerate() {
            let Ok((width, data)) = read_prior(dir, *kind) else {
                continue;
            };
            if width != k {
                bail!(
                    "{}: the {} table is {width} wide but the model's knowledge width is {k}; \
                     build it with --dim {k}",
                    dir.display(),
                    kind.stem()
                );
            }
            for (gi, g) in new.iter().enumerate() {
                if let Some(&r) = row_of.get(g.as_str()) {
                    knowledge[ki][gi * k..(gi + 1) * k].copy_from_slice(&data[r * k..(r + 1) * k]);
                    covered[ki] += 1;
                }
            }
        }
    }
    // Homolog index: a mouse gene looks its priors up through its human ortholog when the
    // vocabulary has one; every other new gene through itself.
    let mut tokens: Vec<String> = vocab.tokens().to_vec();
    tokens.extend(new.iter().cloned());
    let extended = TokenDictionary::from_tokens(tokens, "extended vocabulary")?;
    let homologous_index: Vec<i64> = new
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let own = (v0 + i) as i64;
            if let Some(h) = ortholog_of.get(g) {
                return extended.get(h).map_or(own, i64::from);
            }
            if !g.starts_with("ENSMUSG") {
                return own;
            }
            Orthologs::embedded()
                .counterpart(g)
                .and_then(|h| extended.get(h))
                .map_or(own, i64::from)
        })
        .collect();
    let ext = VocabExtension {
        n,
        knowledge,
        homologous_index,
        seed: args.seed,
    };
    let native = args.model.join("model.bpk").is_file();
    let mut ck = if n > 0 {
        extend_checkpoint(ck, &ext)
    } else {
        ck
    };
    let mut species_code = None;
    if let Some(name) = &args.add_species {
        let (c, code) = add_species(ck, name)?;
        ck = c;
        species_code = Some(code);
    }
    if native {
        save_native(&ck, &args.output, false)?;
    } else {
        export_official_safetensors(&ck.model, &ck.config, &args.output)?;
    }
    extended.save_json(&args.output.join("token_dict.json"))?;
    for name in ["gene_medians.json", "model_card.md"] {
        let from = args.model.join(name);
        if from.is_file() {
            std::fs::copy(&from, args.output.join(name))
                .with_context(|| format!("copying {}", from.display()))?;
        }
    }
    let record = serde_json::json!({
        "source_model": args.model.display().to_string(),
        "source_vocab_size": v0,
        "added": new.iter().enumerate().map(|(i, g)| serde_json::json!({
            "token": g, "id": v0 + i, "symbol": symbol_of(g),
            "homolog_index": ext.homologous_index[i],
        })).collect::<Vec<_>>(),
        "priors": PriorKind::ALL.iter().zip(&covered).map(|(kd, c)| (kd.stem().to_string(), serde_json::json!(c))).collect::<serde_json::Map<_, _>>(),
        "seed": args.seed,
        "added_species": args.add_species.as_ref().map(|n| serde_json::json!({
            "name": n, "code": species_code,
            "genes_file": args.species_genes.as_ref().map(|p| p.display().to_string()),
            "with_human_ortholog": ortholog_of.len(),
        })),
    });
    std::fs::write(
        args.output.join("vocab_extension.json"),
        serde_json::to_string_pretty(&record)?,
    )?;
    eprintln!(
        "added {n} genes (ids {v0}..{}) to {} -> {} ({} format)",
        (v0 + n).saturating_sub(1),
        args.model.display(),
        args.output.display(),
        if native { "native" } else { "official" }
    );
    if let (Some(name), Some(code)) = (&args.add_species, species_code) {
        eprintln!(
            "added species {name} with code {code} (its CLS row starts as the mean of the others; \
             {} of its genes look their priors up through a human ortholog); tokenize its cells \
             with --species {code} --token-dict {}/token_dict.json",
            ortholog_of.len(),
            args.output.display()
        );
    }
    for (kind, c) in PriorKind::ALL.iter().zip(&covered) {
        if *c < n {
            eprintln!(
                "warning: {} of {n} new genes have no {} vector (zero rows); build priors that \
                 cover them and pass --priors",
                n - c,
                kind.stem()
            );
        }
    }
    if args.model.join("gene_medians.json").is_file() {
        eprintln!(
            "note: gene_medians.json was copied unchanged; compute medians for the new genes \
             (`genecompass-train medians`) before tokenizing cells that hold them"
        );
    }
    Ok(())
}
