//! The official tokenization path (`preprocess/preprocess.py`, spec §3) over a [`CellSource`], in two
//! streaming passes so that memory is bounded by the chunk size (plus a few numbers per cell):
//!
//! 1. gene identity ([`super::genes`]): genes without an Ensembl id are dropped (official step 1);
//! 2. **pass 1** ([`super::pass_one`]) — per-cell totals, mitochondrial counts and expressed-gene counts; cell QC
//!    ([`super::qc`]: total > 0, z-scores within sample inside (−3, 3), > 6 expressed genes);
//! 3. **pass 2** — for kept cells: vocabulary filter, optional `normalize_total`, division by the gene
//!    median, `log2(1+x)`, ranking, truncation ([`super::transform`]).

use super::genes::{GeneMatch, GeneMatchOptions, GeneMatchReport, match_genes};
use super::medians::{GeneMedians, MedianAccumulator, MedianMode};
use super::pass_one::{PassOne, stats_pass};
use super::qc::{CellQcOptions, GeneCountFilter, QcCounts, select_cells};
use super::transform::TieBreak;
use super::{TokenDictionary, TokenizeError};
use crate::cells::Species;
use crate::data::{CellSource, ObsColumn};
use serde::Serialize;

/// All tokenizer options; `Default` is the official behaviour wherever it is known.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizeOptions {
    /// Species override and (unofficial) ortholog fallback.
    pub species: Option<Species>,
    /// Not official: map genes missing from the vocabulary through one-to-one orthologs.
    pub ortholog_fallback: bool,
    /// Step 2: cell QC.
    pub qc: CellQcOptions,
    /// Steps 3–4: gene filter and minimum expressed genes.
    pub gene_filter: GeneCountFilter,
    /// Library-size normalisation to this total **before** the median division. `None` (default):
    /// the official line `/ per_cell_nonzero_sum * 1e4` is commented out in `Normalized`
    /// (GitHub issue #23), so raw counts are divided by the medians. `Some(1e4)` enables it; the
    /// total is taken over the genes that reach this step (after the vocabulary filter), as in that line.
    pub normalize_total: Option<f64>,
    /// Truncation length (official 2048); `None` keeps every expressed gene.
    pub max_len: Option<usize>,
    /// Order of equal values (the official order is arbitrary).
    pub tie_break: TieBreak,
    /// `obs` column copied into [`TokenizedCell::label`].
    pub label_column: Option<String>,
    /// Cells per chunk read from the source.
    pub chunk_cells: usize,
    /// Refuse matrices whose values are not non-negative integers (default true).
    pub require_counts: bool,
}

impl Default for TokenizeOptions {
    fn default() -> Self {
        Self {
            species: None,
            ortholog_fallback: false,
            qc: CellQcOptions::default(),
            gene_filter: GeneCountFilter::default(),
            normalize_total: None,
            max_len: Some(2048),
            tie_break: TieBreak::TokenId,
            label_column: None,
            chunk_cells: 1024,
            require_counts: true,
        }
    }
}

impl TokenizeOptions {
    /// The gene-matching options these tokenizer options imply.
    pub fn gene_match(&self) -> GeneMatchOptions {
        GeneMatchOptions {
            species: self.species,
            ortholog_fallback: self.ortholog_fallback,
        }
    }
}

/// What tokenization did; record it next to the output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenizeSummary {
    /// SHA-256 of the token dictionary ([`TokenDictionary::sha256`]).
    pub vocab_sha256: String,
    /// Gene matching, including count coverage.
    pub genes: GeneMatchReport,
    /// Cells remaining after each QC step.
    pub qc: QcCounts,
    /// Genes entering the transform (in vocabulary and passing the gene filter).
    pub genes_used: usize,
    /// Of those, genes absent from the median dict (divided by 1, as officially).
    pub genes_without_median: usize,
    /// Kept cells with no gene left after the vocabulary filter; dropped (the official code would
    /// write an all-padding row).
    pub cells_empty: usize,
    /// Cells written.
    pub cells_out: usize,
    /// Cells cut to `max_len`.
    pub cells_truncated: usize,
    /// Whether step 4 counted all mapped genes because no gene had a protein-coding/miRNA biotype.
    pub min_genes_counted_all: bool,
}

/// Per-column decisions derived from the gene match and options.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) mapped: Vec<bool>,
    /// The per-column facts pass 1 reads for every value, packed into one byte ([`USED`],
    /// [`MAPPED`], [`MITO`], [`COUNTED`], [`KEEPS_COUNTS`]) so that they cost one cache line,
    /// not five.
    pub(super) flags: Vec<u8>,
    /// `Some((token, divisor))` for genes entering the transform.
    pub(super) used: Vec<Option<(u32, f64)>>,
    pub(super) counted_all: bool,
}

pub(super) const USED: u8 = 1;
pub(super) const MAPPED: u8 = 2;
pub(super) const MITO: u8 = 4;
pub(super) const COUNTED: u8 = 8;
/// A used column whose divisor keeps every count of 1 or more (a positive median up to 1e29):
/// pass 1 then counts the cell's kept genes without dividing (the division was most of its
/// per-value work).
pub(super) const KEEPS_COUNTS: u8 = 16;
/// A column with a vocabulary token (the coverage report's "matched").
pub(super) const TOKEN: u8 = 32;
/// A column whose values pass 1 reads (off the vocabulary, unmapped, mitochondrial, or used
/// with a divisor that may drop a count); of the others it only counts the non-zero entries.
pub(super) const READS_VALUES: u8 = 64;

fn plan(gm: &GeneMatch, medians: Option<&GeneMedians>, opts: &TokenizeOptions) -> Plan {
    let prefix = opts
        .qc
        .mito_prefix
        .clone()
        .unwrap_or_else(|| match gm.species {
            Species::Human => "MT-".into(),
            Species::Mouse => "mt-".into(),
            // No table names an added species' genes; pass --mito-prefix for its own symbols.
            Species::Added(_) => "MT-".into(),
        });
    let n = gm.ensembl.len();
    let bio_ok = |j: usize, list: &[String]| {
        gm.biotypes[j]
            .as_ref()
            .is_some_and(|b| list.iter().any(|x| x == b))
    };
    let pass_filter = |j: usize| match &opts.gene_filter.gene_biotypes {
        Some(list) => bio_ok(j, list),
        None => true,
    };
    let mapped: Vec<bool> = gm.ensembl.iter().map(Option::is_some).collect();
    let mito: Vec<bool> = (0..n)
        .map(|j| {
            mapped[j]
                && gm.symbols[j]
                    .as_ref()
                    .is_some_and(|s| s.starts_with(&prefix))
        })
        .collect();
    let mut counted: Vec<bool> = (0..n)
        .map(|j| mapped[j] && pass_filter(j) && bio_ok(j, &opts.gene_filter.count_biotypes))
        .collect();
    let counted_all = !counted.iter().any(|&c| c);
    if counted_all {
        counted = (0..n).map(|j| mapped[j] && pass_filter(j)).collect();
    }
    let used: Vec<Option<(u32, f64)>> = (0..n)
        .map(|j| {
            let t = gm.tokens[j].filter(|_| pass_filter(j))?;
            let e = gm.ensembl[j].as_deref().unwrap_or("");
            Some((t, medians.map(|m| m.divisor(e)).unwrap_or(1.0)))
        })
        .collect();
    let flags = (0..n)
        .map(|j| {
            column_flags(
                used[j].map(|(_, m)| m),
                mapped[j],
                mito[j],
                counted[j],
                gm.tokens[j].is_some(),
            )
        })
        .collect();
    Plan {
        mapped,
        flags,
        used,
        counted_all,
    }
}

/// A column's [`Plan::flags`]: its divisor when it enters the transform, whether it is mapped
/// to an Ensembl id, mitochondrial, counted for the expressed-gene filter, and in the vocabulary.
pub(super) fn column_flags(
    divisor: Option<f64>,
    mapped: bool,
    mito: bool,
    counted: bool,
    token: bool,
) -> u8 {
    let f = (u8::from(divisor.is_some()) * USED)
        | (u8::from(mapped) * MAPPED)
        | (u8::from(mito) * MITO)
        | (u8::from(counted) * COUNTED)
        | (u8::from(divisor.is_some_and(|m| m > 0.0 && m <= 1e29)) * KEEPS_COUNTS)
        | (u8::from(token) * TOKEN);
    let reads = f & (TOKEN | MAPPED | MITO) != TOKEN | MAPPED || f & (USED | KEEPS_COUNTS) == USED;
    f | (u8::from(reads) * READS_VALUES)
}

pub(super) fn text_column(
    source: &dyn CellSource,
    name: &str,
    what: &str,
) -> Result<Vec<String>, TokenizeError> {
    let cells = source.cells();
    match cells.column(name) {
        Some(ObsColumn::Text(v)) => Ok(v.clone()),
        Some(ObsColumn::Number(v)) => Ok(v.iter().map(|x| x.to_string()).collect()),
        None => Err(TokenizeError::Options(format!(
            "{}: {what} column {name:?} not found in the cell metadata; available columns: {:?}",
            source.info().matrix_path,
            cells
                .columns
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
        ))),
    }
}

/// Gene matching, pass 1 and cell selection.
pub(super) struct Prepared {
    pub(super) gm: GeneMatch,
    pub(super) plan: Plan,
    pub(super) keep: Vec<bool>,
    pub(super) qc: QcCounts,
    pub(super) lens: Vec<u32>,
}

/// Matching, pass 1 and cell selection, shared by [`tokenize`] and [`compute_medians`].
pub(super) fn prepare(
    source: &mut dyn CellSource,
    vocab: &TokenDictionary,
    medians: Option<&GeneMedians>,
    opts: &TokenizeOptions,
    matched: Option<GeneMatch>,
) -> Result<Prepared, TokenizeError> {
    let mut gm = match matched {
        Some(gm) => gm,
        None => match_genes(source.genes(), vocab, &opts.gene_match())?,
    };
    let p = plan(&gm, medians, opts);
    let samples = match &opts.qc.sample_column {
        Some(c) => Some(text_column(source, c, "sample")?),
        None => None,
    };
    let PassOne {
        stats,
        totals,
        lens,
    } = stats_pass(source, &p, opts)?;
    gm.record_counts(
        totals.all,
        totals.matched,
        &totals.unmatched,
        &source.genes().names,
    );
    let (keep, counts) = select_cells(&stats, samples.as_deref(), &opts.qc, &opts.gene_filter);
    Ok(Prepared {
        gm,
        plan: p,
        keep,
        qc: counts,
        lens,
    })
}

/// Computes a median dict from `source`: for each vocabulary gene of the file (after the same gene
/// matching and cell QC as [`tokenize`]), the median of its non-zero values over kept cells.
///
/// `normalize_total`: `Some(1e4)` (recommended, see [`super::medians`]) takes medians of counts scaled
/// to 1e4 per cell over the genes entering the transform; `None` takes medians of raw counts.
/// Two passes (QC statistics, then values); [`MedianMode::Exact`] keeps 4 bytes per non-zero value
/// of the kept cells, [`MedianMode::Histogram`] is bounded per gene. For several files pooled into
/// one dict, use [`MedianBuilder`].
pub fn compute_medians(
    source: &mut dyn CellSource,
    vocab: &TokenDictionary,
    opts: &TokenizeOptions,
    normalize_total: Option<f64>,
    mode: MedianMode,
) -> Result<(GeneMedians, QcCounts), TokenizeError> {
    let mut b = MedianBuilder::new(vocab, normalize_total, mode);
    let qc = b.add(source, opts)?;
    Ok((b.finish(), qc))
}

/// Pools non-zero values of vocabulary genes over several sources into one median dict (the
/// multi-file form of [`compute_medians`]): one accumulator slot per vocabulary token, so a gene
/// seen in several files gets the median of all its values.
pub struct MedianBuilder<'v> {
    vocab: &'v TokenDictionary,
    normalize_total: Option<f64>,
    acc: MedianAccumulator,
}

impl<'v> MedianBuilder<'v> {
    /// An empty builder; see [`compute_medians`] for `normalize_total` and `mode`.
    pub fn new(vocab: &'v TokenDictionary, normalize_total: Option<f64>, mode: MedianMode) -> Self {
        Self {
            vocab,
            normalize_total,
            acc: MedianAccumulator::new(vocab.len(), mode),
        }
    }

    /// Adds the kept cells of one source (gene matching and cell QC as [`tokenize`]); returns its
    /// QC counts. Reads the source twice (QC statistics, then values).
    pub fn add(
        &mut self,
        source: &mut dyn CellSource,
        opts: &TokenizeOptions,
    ) -> Result<QcCounts, TokenizeError> {
        let Prepared {
            plan: p, keep, qc, ..
        } = prepare(source, self.vocab, None, opts, None)?;
        // Slot = token id: one per distinct Ensembl id of the vocabulary.
        let slots: Vec<Option<usize>> = p.used.iter().map(|u| u.map(|(t, _)| t as usize)).collect();
        source.rewind()?;
        while let Some(chunk) = source.next_chunk(opts.chunk_cells.max(1))? {
            for i in 0..chunk.n_cells() {
                if !keep.get(chunk.first_cell + i).copied().unwrap_or(false) {
                    continue;
                }
                let (idx, val) = chunk.cell(i);
                let used = || {
                    idx.iter()
                        .zip(val)
                        .filter_map(|(&j, &v)| Some((slots[j as usize]?, v as f64)))
                };
                let sum: f64 = used().map(|(_, v)| v).sum();
                for (slot, v) in used() {
                    self.acc.add(
                        slot,
                        match self.normalize_total {
                            Some(t) if sum > 0.0 => v / sum * t,
                            Some(_) => 0.0,
                            None => v,
                        },
                    );
                }
            }
        }
        Ok(qc)
    }

    /// The medians of every vocabulary gene that had a non-zero value, keyed by token (Ensembl id).
    pub fn finish(self) -> GeneMedians {
        let medians = self
            .acc
            .finish()
            .into_iter()
            .enumerate()
            .filter_map(|(t, m)| Some((self.vocab.token(t as u32)?.to_string(), m?)))
            .collect();
        GeneMedians { medians }
    }
}
