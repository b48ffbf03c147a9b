//! `embed-genes`: context-averaged gene embeddings (and cell embeddings) as `.npy`, the input
//! format of the Python perturbation and drug-response models (GEARS, CPA, DeepCE).

use std::path::PathBuf;

use clap::Args;
use genecompass_core::npy::to_npy_f32;
use genecompass_core::tasks::gene_embed::embed_genes;

use super::gene_args::{ModelCellsArgs, beside, symbol_of, write};
use crate::progress::cells_bar;

/// Arguments of `embed-genes`.
#[derive(Args, Debug)]
pub struct EmbedGenesArgs {
    #[command(flatten)]
    pub run: ModelCellsArgs,
    /// Keep only genes seen at least this many times (rare genes have noisy averages).
    #[arg(long, default_value_t = 1)]
    pub min_count: u64,
    /// Output prefix: PREFIX.npy (genes × hidden, float32), PREFIX.genes.txt (Ensembl id per
    /// line, the rows of PREFIX.npy), PREFIX.genes.tsv (id, symbol, token, occurrences), and
    /// PREFIX.cells_cls.npy / PREFIX.cells_mean.npy (cells × hidden: CLS output and mean over
    /// real genes, the two cell embeddings `embed` writes).
    #[arg(long, value_name = "PREFIX")]
    pub output: PathBuf,
}

/// Writes the gene and cell embedding files.
pub fn run(args: EmbedGenesArgs) -> anyhow::Result<()> {
    let loaded = args.run.load()?;
    let mut options = args.run.options();
    // Folding costs about one projection per vocabulary token: worth it for more tokens only.
    let tokens: usize = loaded.cells.cells.iter().map(|c| c.len()).sum();
    options.folded = !args.run.unfolded && tokens > loaded.checkpoint.config.vocab_size;
    options.alpha = loaded.alpha();
    let cells = &loaded.cells;
    let bar = cells_bar(cells.len(), "embed-genes");
    let start = std::time::Instant::now();
    let (genes, cell_emb) = embed_genes(
        loaded.checkpoint.bert(),
        cells,
        &options,
        &loaded.device,
        |n| bar.inc(n as u64),
    );
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let h = genes.hidden;
    let keep: Vec<usize> = (0..genes.tokens.len())
        .filter(|&i| genes.counts[i] >= args.min_count)
        .collect();
    if keep.is_empty() {
        anyhow::bail!(
            "no gene occurs at least {} times in the {} cells; lower --min-count",
            args.min_count,
            cells.len()
        );
    }
    let mut matrix = Vec::with_capacity(keep.len() * h);
    let mut ids = String::new();
    let mut tsv = String::from("ensembl_id\tsymbol\ttoken\toccurrences\n");
    for &i in &keep {
        let t = genes.tokens[i];
        matrix.extend_from_slice(&genes.mean[i * h..(i + 1) * h]);
        let id = loaded
            .vocab
            .token(t)
            .map_or_else(|| format!("token_{t}"), String::from);
        let sym = symbol_of(&id).unwrap_or_else(|| "NA".into());
        ids.push_str(&id);
        ids.push('\n');
        tsv.push_str(&format!("{id}\t{sym}\t{t}\t{}\n", genes.counts[i]));
    }
    let npy = beside(&args.output, ".npy")?;
    write(&npy, to_npy_f32(&[keep.len(), h], &matrix))?;
    write(&beside(&args.output, ".genes.txt")?, ids)?;
    write(&beside(&args.output, ".genes.tsv")?, tsv)?;
    let n = cells.len();
    write(
        &beside(&args.output, ".cells_cls.npy")?,
        to_npy_f32(&[n, h], &cell_emb.cls),
    )?;
    write(
        &beside(&args.output, ".cells_mean.npy")?,
        to_npy_f32(&[n, h], &cell_emb.mean),
    )?;
    eprintln!(
        "embedded {} genes ({} dropped under --min-count) from {n} cells in {secs:.2}s -> {}",
        keep.len(),
        genes.tokens.len() - keep.len(),
        npy.display()
    );
    Ok(())
}
