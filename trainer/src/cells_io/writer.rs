//! Writing CELLS safetensors files, streamed: the tokenizer's first pass gives the cell count,
//! longest cell and token total, so the header is written first and the tensors are filled as
//! cells arrive, in memory bounded by one batch.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use genecompass_core::cells::{CellSet, TokenizedCell};

/// How a CELLS file stores its cells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CellsLayout {
    /// `input_ids` [N, L] i64 and `values` [N, L] f32 padded with 0 to the longest cell, with
    /// `attention_mask` [N, L] i64, `species` [N, 1] i64 and `lengths` [N] i64: the model's
    /// input as is, for any tool that reads tensors.
    #[default]
    Padded,
    /// The cells' tokens end to end: `input_ids` [T] i32, `values` [T] f32, `offsets` [N + 1]
    /// i64 (cell i is `offsets[i]..offsets[i + 1]`) and `species` [N, 1] i64. No padding: about
    /// 3.9× smaller on Baron, 5.0× on a 1 GB corpus, where most cells are far shorter than the longest.
    Ragged,
}

/// The size of what a [`CellsWriter`] will receive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CellsShape {
    /// Cells.
    pub cells: usize,
    /// The longest cell, in tokens (the padded width; at least 1 is written).
    pub longest: usize,
    /// Tokens over all cells (the ragged length).
    pub tokens: usize,
}

impl CellsShape {
    /// The shape of cells already in memory.
    pub fn of(cells: &CellSet) -> Self {
        Self {
            cells: cells.len(),
            longest: cells.cells.iter().map(|c| c.len()).max().unwrap_or(0),
            tokens: cells.cells.iter().map(|c| c.len()).sum(),
        }
    }
}

/// Writes tokenized cells in `layout` ([`CellsLayout`]), which `read_cells` reads back. Labels
/// (when every cell has one) go into the metadata as a JSON list under `labels`.
pub fn write_cells_safetensors(
    path: &Path,
    cells: &CellSet,
    layout: CellsLayout,
    metadata: HashMap<String, String>,
) -> anyhow::Result<()> {
    let labels = cells
        .cells
        .iter()
        .map(|c| c.label.clone())
        .collect::<Option<Vec<_>>>();
    let mut w = CellsWriter::create(path, layout, CellsShape::of(cells), labels, metadata)?;
    for c in &cells.cells {
        w.push(c)?;
    }
    w.finish()
}

/// Cells buffered before they are written out (a few MB at 2048 tokens).
pub(super) const WRITE_BATCH: usize = 256;

/// Padding at least this long is skipped rather than written: the file is sized up front, so
/// skipped bytes read as zeros and need no write.
const HOLE_MIN: u64 = 4096;

/// Streams cells into a CELLS file whose [`CellsShape`] is known up front, so that a file far
/// larger than memory can be written. Each tensor is filled a batch of cells at a time; the
/// file is a temporary one renamed into place by [`CellsWriter::finish`], and removed if the
/// writer is dropped before.
pub struct CellsWriter {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    layout: CellsLayout,
    shape: CellsShape,
    /// Padded width.
    l: usize,
    /// Where each tensor's data starts in the file, by name.
    starts: HashMap<&'static str, u64>,
    cells_written: usize,
    tokens_written: usize,
    pending: Vec<TokenizedCell>,
    finished: bool,
}

impl CellsWriter {
    /// Creates the temporary file. `labels`, when given, must hold one per cell.
    pub fn create(
        path: &Path,
        layout: CellsLayout,
        shape: CellsShape,
        labels: Option<Vec<String>>,
        mut metadata: HashMap<String, String>,
    ) -> anyhow::Result<Self> {
        let (n, l, t) = (shape.cells, shape.longest.max(1), shape.tokens);
        if let Some(labels) = labels.filter(|_| n > 0) {
            if labels.len() != n {
                bail!("{} labels for {n} cells", labels.len());
            }
            metadata.insert("labels".into(), serde_json::to_string(&labels)?);
        }
        let tensors: Vec<(&'static str, &str, Vec<usize>, usize)> = match layout {
            CellsLayout::Padded => vec![
                ("input_ids", "I64", vec![n, l], 8),
                ("attention_mask", "I64", vec![n, l], 8),
                ("species", "I64", vec![n, 1], 8),
                ("lengths", "I64", vec![n], 8),
                ("values", "F32", vec![n, l], 4),
            ],
            CellsLayout::Ragged => {
                metadata.insert("layout".into(), "ragged".into());
                vec![
                    ("input_ids", "I32", vec![t], 4),
                    ("values", "F32", vec![t], 4),
                    ("offsets", "I64", vec![n + 1], 8),
                    ("species", "I64", vec![n, 1], 8),
                ]
            }
        };
        let mut header = serde_json::Map::new();
        let mut offsets = Vec::new();
        let mut offset = 0usize;
        for (name, dtype, shape, width) in &tensors {
            let size = shape.iter().product::<usize>() * width;
            header.insert(
                (*name).into(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}),
            );
            offsets.push((*name, offset));
            offset += size;
        }
        header.insert("__metadata__".into(), serde_json::to_value(&metadata)?);
        let mut head = serde_json::to_string(&serde_json::Value::Object(header))?.into_bytes();
        while head.len() % 8 != 0 {
            head.push(b' ');
        }
        let data_start = 8 + head.len() as u64;
        let tmp = path.with_extension("safetensors.tmp");
        let created = (|| -> std::io::Result<File> {
            let mut file = File::create(&tmp)?;
            file.write_all(&(head.len() as u64).to_le_bytes())?;
            file.write_all(&head)?;
            file.set_len(data_start + offset as u64)?;
            Ok(file)
        })();
        let file = match created {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e).with_context(|| format!("creating {}", tmp.display()));
            }
        };
        Ok(Self {
            file,
            tmp,
            path: path.to_path_buf(),
            layout,
            shape,
            l,
            starts: offsets
                .into_iter()
                .map(|(k, o)| (k, data_start + o as u64))
                .collect(),
            cells_written: 0,
            tokens_written: 0,
            pending: Vec::with_capacity(WRITE_BATCH),
            finished: false,
        })
    }

    /// Adds the next cell.
    pub fn push(&mut self, cell: &TokenizedCell) -> anyhow::Result<()> {
        if self.cells_written + self.pending.len() >= self.shape.cells {
            bail!(
                "{}: more cells than the {} announced",
                self.tmp.display(),
                self.shape.cells
            );
        }
        if cell.len() > self.l || cell.values.len() != cell.len() {
            bail!(
                "{}: a cell of {} tokens ({} values) in a file {} tokens wide",
                self.tmp.display(),
                cell.len(),
                cell.values.len(),
                self.l
            );
        }
        self.pending.push(TokenizedCell {
            input_ids: cell.input_ids.clone(),
            values: cell.values.clone(),
            species: cell.species,
            label: None,
        });
        if self.pending.len() == WRITE_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let rows = std::mem::take(&mut self.pending);
        let (first, tok0) = (self.cells_written as u64, self.tokens_written as u64);
        let at = |k: &str| self.starts[k];
        let (l, layout) = (self.l as u64, self.layout);
        let (ids_at, values_at, species_at) = (at("input_ids"), at("values"), at("species"));
        let mut out = Spans::new(&mut self.file);
        let io = (|| -> std::io::Result<()> {
            // Where cell `r` of the batch starts, in elements of a token tensor.
            let mut pos = Vec::with_capacity(rows.len());
            let mut tok = tok0;
            for (r, c) in rows.iter().enumerate() {
                pos.push(match layout {
                    CellsLayout::Padded => (first + r as u64) * l,
                    CellsLayout::Ragged => tok,
                });
                tok += c.len() as u64;
            }
            for (c, &p) in rows.iter().zip(&pos) {
                out.put(ids_at + p * layout.id_width(), |b| match layout {
                    CellsLayout::Padded => c
                        .input_ids
                        .iter()
                        .for_each(|&t| b.extend_from_slice(&i64::from(t).to_le_bytes())),
                    CellsLayout::Ragged => c
                        .input_ids
                        .iter()
                        .for_each(|&t| b.extend_from_slice(&(t as i32).to_le_bytes())),
                })?;
            }
            out.flush()?;
            for (c, &p) in rows.iter().zip(&pos) {
                out.put(values_at + p * 4, |b| {
                    c.values
                        .iter()
                        .for_each(|v| b.extend_from_slice(&v.to_le_bytes()))
                })?;
            }
            out.flush()?;
            for (r, c) in rows.iter().enumerate() {
                let code = i64::from(c.species.code());
                out.put(species_at + (first + r as u64) * 8, |b| {
                    b.extend_from_slice(&code.to_le_bytes())
                })?;
            }
            out.flush()?;
            match layout {
                CellsLayout::Padded => {
                    let mask_at = at("attention_mask");
                    for (c, &p) in rows.iter().zip(&pos) {
                        out.put(mask_at + p * 8, |b| {
                            (0..c.len()).for_each(|_| b.extend_from_slice(&1i64.to_le_bytes()))
                        })?;
                    }
                    out.flush()?;
                    let lengths_at = at("lengths");
                    for (r, c) in rows.iter().enumerate() {
                        out.put(lengths_at + (first + r as u64) * 8, |b| {
                            b.extend_from_slice(&(c.len() as i64).to_le_bytes())
                        })?;
                    }
                }
                CellsLayout::Ragged => {
                    let offsets_at = at("offsets");
                    for (r, &p) in pos.iter().enumerate() {
                        out.put(offsets_at + (first + r as u64) * 8, |b| {
                            b.extend_from_slice(&(p as i64).to_le_bytes())
                        })?;
                    }
                    // The end offset, rewritten by each batch; the last one stays.
                    out.put(offsets_at + (first + rows.len() as u64) * 8, |b| {
                        b.extend_from_slice(&(tok as i64).to_le_bytes())
                    })?;
                }
            }
            out.flush()
        })();
        io.with_context(|| format!("writing {}", self.tmp.display()))?;
        self.cells_written += rows.len();
        self.tokens_written += rows.iter().map(|c| c.len()).sum::<usize>();
        self.pending = rows;
        self.pending.clear();
        Ok(())
    }

    /// Writes what is buffered, syncs, and renames the file into place; fails (leaving nothing
    /// behind) unless exactly the announced cells and tokens were pushed.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.flush()?;
        let tokens_expected = self.shape.tokens;
        if self.cells_written != self.shape.cells || self.tokens_written != tokens_expected {
            bail!(
                "{}: {} cells ({} tokens) written, {} ({}) announced",
                self.tmp.display(),
                self.cells_written,
                self.tokens_written,
                self.shape.cells,
                tokens_expected
            );
        }
        self.file
            .sync_all()
            .with_context(|| format!("writing {}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("renaming to {}", self.path.display()))?;
        self.finished = true;
        Ok(())
    }
}

impl CellsLayout {
    fn id_width(self) -> u64 {
        match self {
            CellsLayout::Padded => 8,
            CellsLayout::Ragged => 4,
        }
    }
}

impl Drop for CellsWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Coalesces positioned writes: nearby spans go out as one write (the gap zero-filled), distant
/// ones as separate writes that leave the gap unwritten. Flush between tensors: a gap filled
/// with zeros must not cover another tensor's data.
struct Spans<'f> {
    file: &'f mut File,
    at: u64,
    buf: Vec<u8>,
}

impl<'f> Spans<'f> {
    fn new(file: &'f mut File) -> Self {
        Self {
            file,
            at: 0,
            buf: Vec::with_capacity(8 << 20),
        }
    }

    /// Appends the bytes `data` writes, to land at `pos`.
    fn put(&mut self, pos: u64, data: impl FnOnce(&mut Vec<u8>)) -> std::io::Result<()> {
        let end = self.at + self.buf.len() as u64;
        if self.buf.is_empty() {
            self.at = pos;
        } else if pos >= end && pos - end < HOLE_MIN {
            self.buf.resize(self.buf.len() + (pos - end) as usize, 0);
        } else {
            self.flush()?;
            self.at = pos;
        }
        data(&mut self.buf);
        if self.buf.len() >= 8 << 20 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.file.seek(SeekFrom::Start(self.at))?;
            self.file.write_all(&self.buf)?;
            self.at += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
