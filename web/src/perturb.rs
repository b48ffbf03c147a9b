//! In-silico perturbation of the cells just annotated: gene names → the model's tokens, then
//! core's `perturb_cells` on the classifier's encoder (per-gene cosine tables) and the same
//! [`BatchClassifier`] as the annotation on the perturbed cells (their labels and their place on
//! the original PCA axes). No browser APIs here: the worker only adds messages around it, and
//! the native tests run the very same code.

use std::cell::Cell;
use std::collections::HashMap;

use burn::prelude::Device;
use genecompass_core::cells::{CellSet, Species};
use genecompass_core::tasks::infer::{BatchClassifier, InferOptions};
use genecompass_core::tasks::pca::PcaBasis;
use genecompass_core::tasks::perturb::{
    Alignment, PerturbKind, PerturbOptions, perturb_cell, perturb_cells,
};
use genecompass_core::tokenize::genes::parse_ensembl;
use genecompass_core::tokenize::{GeneTable, NameHit, TokenDictionary, resolve_gene_name};

use crate::engine::Annotator;
use crate::protocol::{AffectedRow, GenePerturbation, PerturbMode, PerturbRequest, PerturbedPoint};
use crate::results::argmax;

/// Most affected genes listed per perturbation.
pub const TOP_AFFECTED: usize = 10;

/// What the worker keeps of the last annotation, to perturb it later.
pub struct LastRun {
    /// The tokenized cells: the annotation's first cells, up to [`PERTURB_TOKENS`] tokens.
    pub cells: CellSet,
    /// Cells the annotation classified (more than `cells` when the budget cut them).
    pub annotated: usize,
    /// The file's species (for symbols), when detected.
    pub species: Option<Species>,
    /// Predicted label index of each cell (argmax).
    pub before: Vec<usize>,
    /// The PCA axes of the original plot.
    pub basis: PcaBasis,
}

/// Tokens of annotated cells kept for perturbations (8 bytes each: 32 MB), so that the
/// worker's memory stays bounded on large files. Baron's 822 cells hold about 1.3 million.
pub const PERTURB_TOKENS: usize = 4_000_000;

/// A gene name resolved to the model's token.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedGene {
    /// The name as typed.
    pub query: String,
    /// Token id.
    pub token: u32,
    /// Ensembl id (the dictionary's key).
    pub ensembl: String,
    /// Approved symbol, when the embedded tables know the id.
    pub symbol: Option<String>,
}

impl ResolvedGene {
    fn display(&self) -> String {
        match &self.symbol {
            Some(s) => format!("{s} ({})", self.ensembl),
            None => self.ensembl.clone(),
        }
    }
}

/// The species of a report's `species` field (`"human"`, `"mouse"`), if it is one.
pub fn species_named(name: &str) -> Option<Species> {
    [Species::Human, Species::Mouse]
        .into_iter()
        .find(|s| s.name() == name)
}

/// The approved symbol of an Ensembl id, from the tables embedded in the bundle.
pub fn symbol_of(ensembl: &str) -> Option<String> {
    let (base, species) = parse_ensembl(ensembl)?;
    GeneTable::embedded(species)
        .by_ensembl(base)
        .map(|r| r.symbol.to_string())
        .filter(|s| !s.is_empty())
}

/// The gene names of the input box: comma-, semicolon- or whitespace-separated, duplicates
/// dropped, order kept.
pub fn parse_gene_list(text: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    text.split([',', ';', ' ', '\t', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty() && seen.insert(s.to_string()))
        .map(String::from)
        .collect()
}

/// Resolves one name: an Ensembl id (version suffix allowed) or an HGNC/MGI symbol, looked up in
/// the file's species first. Current symbols win over previous symbols and aliases.
pub fn resolve_gene(
    name: &str,
    vocab: &TokenDictionary,
    species: Option<Species>,
) -> Result<ResolvedGene, String> {
    let lookup = |ensembl: &str, how: &str| {
        vocab
            .get(ensembl)
            .map(|token| ResolvedGene {
                query: name.to_string(),
                token,
                ensembl: ensembl.to_string(),
                symbol: symbol_of(ensembl),
            })
            .ok_or_else(|| {
                format!(
                    "{name}{how} is not in the model's token dictionary ({} tokens), so the model \
                     has no embedding for it",
                    vocab.len()
                )
            })
    };
    match resolve_gene_name(name, species) {
        NameHit::Ensembl(id) => lookup(&id, ""),
        NameHit::Symbol {
            ensembl, species, ..
        } => lookup(
            &ensembl,
            &format!(" ({ensembl}, {} symbol)", species.name()),
        ),
        NameHit::Ambiguous(ids) => Err(format!(
            "{name} is an ambiguous symbol (previous or alias symbol of {}); type the Ensembl id",
            ids.join(", ")
        )),
        NameHit::Unknown => Err(format!(
            "unknown gene {name:?}: not an Ensembl gene id (ENSG…/ENSMUSG…) nor a known HGNC/MGI \
             symbol"
        )),
    }
}

/// Resolves every name (reporting all the bad ones at once) and drops repeats of a token.
pub fn resolve_genes(
    names: &[String],
    vocab: &TokenDictionary,
    species: Option<Species>,
) -> Result<Vec<ResolvedGene>, String> {
    if names.is_empty() {
        return Err("type at least one gene (Ensembl id or symbol)".into());
    }
    let (mut genes, mut errors) = (Vec::<ResolvedGene>::new(), Vec::new());
    for n in names {
        match resolve_gene(n, vocab, species) {
            Ok(g) if genes.iter().any(|x| x.token == g.token) => {}
            Ok(g) => genes.push(g),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(genes)
    } else {
        Err(errors.join("\n"))
    }
}

/// Progress stages (the page shows them with the counts).
pub const STAGE_COMPARE: &str = "Perturbing: comparing gene embeddings";
/// Second stage.
pub const STAGE_CLASSIFY: &str = "Perturbing: classifying the perturbed cells";

/// Perturbs each gene of `req` separately in the cells of `last`. `progress(stage, done, total)`
/// counts perturbed cells. Returns the per-gene results and notes (genes no cell holds).
pub fn run_perturbation(
    a: &Annotator,
    last: &LastRun,
    req: &PerturbRequest,
    device: &Device,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<(Vec<GenePerturbation>, Vec<String>), String> {
    let names: Vec<String> = req.genes.iter().flat_map(|g| parse_gene_list(g)).collect();
    let genes = resolve_genes(&names, &a.vocab, last.species)?;
    let cells = &last.cells;
    let mut holders: HashMap<u32, usize> = HashMap::new();
    for c in &cells.cells {
        for g in &genes {
            if c.input_ids.contains(&g.token) {
                *holders.entry(g.token).or_default() += 1;
            }
        }
    }
    let absent = |g: &ResolvedGene| {
        format!(
            "{} is expressed in none of the {} annotated cells (or ranks below the model's input \
             length in all of them): nothing to perturb",
            g.display(),
            cells.len()
        )
    };
    let (present, missing): (Vec<&ResolvedGene>, Vec<&ResolvedGene>) =
        genes.iter().partition(|g| holders.contains_key(&g.token));
    let mut notes: Vec<String> = missing.iter().map(|g| absent(g)).collect();
    if cells.len() < last.annotated {
        notes.push(format!(
            "perturbed in the first {} of the {} annotated cells: the page keeps at most {} \
             million tokens of cells for perturbations",
            cells.len(),
            last.annotated,
            PERTURB_TOKENS / 1_000_000
        ));
    }
    if present.is_empty() {
        return Err(notes.join("\n"));
    }
    let kind = match req.mode {
        PerturbMode::Delete => PerturbKind::Delete,
        PerturbMode::Overexpress => PerturbKind::Overexpress {
            factor: PerturbKind::OFFICIAL_FACTOR,
        },
    };
    let infer = a.options(req.batch_size);
    let options = PerturbOptions {
        infer: InferOptions {
            folded: false,
            ..infer
        },
        kind,
        alignment: Alignment::Identity,
    };
    let perturbations: Vec<Vec<u32>> = present.iter().map(|g| vec![g.token]).collect();
    let total: usize = present.iter().map(|g| holders[&g.token]).sum();
    let done = Cell::new(0usize);
    progress(STAGE_COMPARE, 0, total);
    let report = perturb_cells(
        &a.model.bert,
        cells,
        &perturbations,
        &options,
        device,
        |_| progress(STAGE_COMPARE, done.get(), total),
        |_| done.set(done.get() + 1),
    )
    .map_err(|e| e.to_string())?;

    // The classifier on the perturbed cells, exactly as the annotation ran it.
    let runner = BatchClassifier::new(&a.model, &infer);
    let mut classified = 0;
    progress(STAGE_CLASSIFY, 0, total);
    let mut out = Vec::with_capacity(present.len());
    for (g, summary) in present.iter().zip(&report.summaries) {
        let (index, edited): (Vec<usize>, Vec<_>) = cells
            .cells
            .iter()
            .enumerate()
            .filter_map(|(i, c)| perturb_cell(c, &[g.token], kind).map(|p| (i, p.cell)))
            .unzip();
        let set = CellSet {
            cells: edited,
            padded_len: None,
        };
        let mut after = vec![0usize; set.len()];
        let mut pooled: Vec<f32> = Vec::new();
        let width = last.basis.width();
        for idx in runner.plan(&set) {
            let b = runner.run(&set, &idx, device);
            if pooled.is_empty() {
                pooled = vec![0.0; set.len() * width];
            }
            for (row, &ci) in idx.iter().enumerate() {
                pooled[ci * width..(ci + 1) * width]
                    .copy_from_slice(&b.pooled[row * width..(row + 1) * width]);
                after[ci] = argmax(&b.probabilities[row * b.classes..(row + 1) * b.classes]).0;
            }
            classified += idx.len();
            progress(STAGE_CLASSIFY, classified, total);
        }
        let projected = last.basis.project(&pooled);
        let points = index
            .iter()
            .zip(projected)
            .zip(after)
            .map(|((&i, point), after)| PerturbedPoint {
                index: i,
                point,
                before: last.before.get(i).copied().unwrap_or(0),
                after,
            })
            .collect();
        let top = summary
            .affected
            .ranked()
            .into_iter()
            .take(TOP_AFFECTED)
            .map(|x| {
                let ensembl = a.vocab.token(x.token).unwrap_or("?").to_string();
                AffectedRow {
                    symbol: symbol_of(&ensembl),
                    ensembl,
                    cells: x.count,
                    mean_cos: x.mean_cos,
                }
            })
            .collect();
        out.push(GenePerturbation {
            query: g.query.clone(),
            ensembl: g.ensembl.clone(),
            symbol: g.symbol.clone(),
            cells: summary.cells,
            cls_shift: summary.mean_cls_cos.map(|c| 1.0 - c),
            top,
            points,
        });
    }
    Ok((out, notes))
}

#[cfg(test)]
#[path = "perturb_tests.rs"]
mod tests;
