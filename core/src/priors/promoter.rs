//! A CPU promoter embedding: k-mer frequency profile of each sequence, centred on the uniform
//! background, projected to K dimensions with a seeded Gaussian random projection.
//!
//! The official promoter prior is the [CLS] vector of a fine-tuned DNABERT over −500/+2000 bp
//! around each TSS (spec §5.2): a 110M-parameter transformer and a GPU job. This is a
//! dependency-free substitute that keeps what matters to the model (sequences with similar
//! composition and motifs get nearby vectors; Johnson–Lindenstrauss keeps cosine geometry) and
//! is deterministic for a seed. Sequences are used in the orientation given (promoters are
//! strand-specific); `N` and other symbols break k-mers.

use serde::{Deserialize, Serialize};

use super::{GeneVectors, PriorError, SplitMix64};

/// Options (recorded in the manifest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromoterOptions {
    /// k-mer lengths `min_k..=max_k` are profiled (each block normalised to frequencies).
    pub min_k: usize,
    /// Longest k-mer (4^k features; 6 → 4,096).
    pub max_k: usize,
    /// Output width K.
    pub dim: usize,
    /// Seed of the projection matrix.
    pub seed: u64,
}

impl Default for PromoterOptions {
    fn default() -> Self {
        Self {
            min_k: 1,
            max_k: 6,
            dim: 768,
            seed: 42,
        }
    }
}

/// One FASTA record.
#[derive(Debug, Clone, PartialEq)]
pub struct FastaRecord {
    /// First word of the header line (after `>`).
    pub name: String,
    /// The sequence, upper-cased, line breaks removed.
    pub seq: Vec<u8>,
}

/// Parses FASTA text. The record name is the first whitespace-separated word of the header; a
/// `|`-separated header (`>ENSG…|TP53|…`) keeps its first field.
pub fn parse_fasta(text: &str, file: &str) -> Result<Vec<FastaRecord>, PriorError> {
    let mut out: Vec<FastaRecord> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if let Some(h) = line.strip_prefix('>') {
            let name = h
                .split_whitespace()
                .next()
                .unwrap_or("")
                .split('|')
                .next()
                .unwrap_or("");
            if name.is_empty() {
                return Err(PriorError::invalid(
                    file,
                    format!("line {}: FASTA header without a name", i + 1),
                ));
            }
            out.push(FastaRecord {
                name: name.to_string(),
                seq: Vec::new(),
            });
        } else if !line.is_empty() {
            let rec = out.last_mut().ok_or_else(|| {
                PriorError::invalid(
                    file,
                    format!(
                        "line {}: sequence before the first `>` header; is this FASTA?",
                        i + 1
                    ),
                )
            })?;
            rec.seq.extend(line.bytes().map(|b| b.to_ascii_uppercase()));
        }
    }
    Ok(out)
}

fn base(b: u8) -> Option<usize> {
    match b {
        b'A' => Some(0),
        b'C' => Some(1),
        b'G' => Some(2),
        b'T' | b'U' => Some(3),
        _ => None,
    }
}

/// The centred k-mer profile (`Σ_k 4^k` features): per k, frequency minus 4^-k.
pub fn kmer_profile(seq: &[u8], min_k: usize, max_k: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for k in min_k..=max_k {
        let size = 1usize << (2 * k);
        let mask = size - 1;
        let mut counts = vec![0u32; size];
        let (mut code, mut len, mut total) = (0usize, 0usize, 0u32);
        for &b in seq {
            match base(b) {
                Some(x) => {
                    code = ((code << 2) | x) & mask;
                    len += 1;
                    if len >= k {
                        counts[code] += 1;
                        total += 1;
                    }
                }
                None => len = 0,
            }
        }
        let bg = 1.0 / size as f32;
        out.extend(counts.iter().map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f32 / total as f32 - bg
            }
        }));
    }
    out
}

/// Embeds sequences: profile → Gaussian projection `N(0, 1/dim)` (seeded). Rows in input order.
/// A record with no valid k-mer (empty, or all `N`) gets a zero row.
pub fn embed_sequences(
    records: &[FastaRecord],
    opts: &PromoterOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GeneVectors, PriorError> {
    if opts.min_k == 0 || opts.max_k < opts.min_k || opts.max_k > 8 {
        return Err(PriorError::invalid(
            "promoter options",
            format!(
                "k-mer range {}..={} is invalid; use 1 ≤ min_k ≤ max_k ≤ 8",
                opts.min_k, opts.max_k
            ),
        ));
    }
    let features: usize = (opts.min_k..=opts.max_k).map(|k| 1usize << (2 * k)).sum();
    let dim = opts.dim;
    let mut rng = SplitMix64::stream(opts.seed, 4);
    let scale = (1.0 / dim as f64).sqrt();
    let proj: Vec<f32> = (0..features * dim)
        .map(|_| (rng.normal() * scale) as f32)
        .collect();
    let mut data = vec![0f32; records.len() * dim];
    for (i, rec) in records.iter().enumerate() {
        let p = kmer_profile(&rec.seq, opts.min_k, opts.max_k);
        let row = &mut data[i * dim..(i + 1) * dim];
        for (f, &x) in p.iter().enumerate() {
            if x != 0.0 {
                let w = &proj[f * dim..(f + 1) * dim];
                row.iter_mut().zip(w).for_each(|(o, &wv)| *o += x * wv);
            }
        }
        if i % 256 == 0 {
            progress(i, records.len());
        }
    }
    progress(records.len(), records.len());
    Ok(GeneVectors {
        genes: records.iter().map(|r| r.name.clone()).collect(),
        width: dim,
        data,
    })
}
