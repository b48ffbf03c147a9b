//! Writing CELLS safetensors files, streamed: the tokenizer's first pass gives the cell count,
//! longest cell and token total, so the header is written first and the tensors are filled as
//! cells arrive, in memory bounded by one batch.

use std::collections::HashMap;
use std::fs::File;
use std::io::{IoSlice, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

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

/// A CELLS file's header and where its tensors lie, for a known [`CellsShape`].
pub(super) struct Header {
    /// The header's length (8 bytes, little-endian) and the header itself: the file's start.
    pub(super) bytes: Vec<u8>,
    /// Each tensor's first byte in the file.
    offsets: HashMap<&'static str, u64>,
    /// The whole file's length.
    pub(super) file_len: u64,
}

impl Header {
    /// The header of a `layout` file of `shape`; `labels`, when given, must hold one per cell.
    pub(super) fn new(
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
        let mut offsets = HashMap::new();
        let mut offset = 0usize;
        for (name, dtype, shape, width) in &tensors {
            let size = shape.iter().product::<usize>() * width;
            header.insert(
                (*name).into(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}),
            );
            offsets.insert(*name, offset as u64);
            offset += size;
        }
        header.insert("__metadata__".into(), serde_json::to_value(&metadata)?);
        let mut head = serde_json::to_string(&serde_json::Value::Object(header))?.into_bytes();
        // Tensors start 8-byte aligned, so that they can be used where they lie.
        while head.len() % 8 != 0 {
            head.push(b' ');
        }
        let data_start = 8 + head.len() as u64;
        let mut bytes = (head.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&head);
        for o in offsets.values_mut() {
            *o += data_start;
        }
        Ok(Self {
            bytes,
            offsets,
            file_len: data_start + offset as u64,
        })
    }

    /// Where tensor `name` starts in the file (0 for a tensor the layout lacks).
    pub(super) fn at(&self, name: &str) -> u64 {
        self.offsets.get(name).copied().unwrap_or(0)
    }
}

/// Streams cells into a CELLS file whose [`CellsShape`] is known up front, so that a file far
/// larger than memory can be written. Cells are handed a batch at a time to a thread that lays
/// them out and writes them, so that the caller (the tokenizer) goes on ranking meanwhile;
/// laying out and writing was a third of tokenizing a 1 GB file on its main thread. The file is
/// a temporary one renamed into place by [`CellsWriter::finish`], and removed if the writer is
/// dropped before.
pub struct CellsWriter {
    tmp: PathBuf,
    path: PathBuf,
    shape: CellsShape,
    /// Padded width.
    l: usize,
    cells_pushed: usize,
    tokens_pushed: usize,
    pending: Vec<TokenizedCell>,
    /// Batches to the writing thread (at most [`BATCHES_IN_FLIGHT`] waiting).
    batches: Option<SyncSender<Vec<TokenizedCell>>>,
    thread: Option<JoinHandle<std::io::Result<File>>>,
    finished: bool,
}

/// Batches queued for the writing thread: memory stays bounded by a few batches.
const BATCHES_IN_FLIGHT: usize = 2;

impl CellsWriter {
    /// Creates the temporary file. `labels`, when given, must hold one per cell.
    pub fn create(
        path: &Path,
        layout: CellsLayout,
        shape: CellsShape,
        labels: Option<Vec<String>>,
        metadata: HashMap<String, String>,
    ) -> anyhow::Result<Self> {
        let head = Header::new(layout, shape, labels, metadata)?;
        let l = shape.longest.max(1);
        let tmp = path.with_extension("safetensors.tmp");
        let created = (|| -> std::io::Result<File> {
            let mut file = File::create(&tmp)?;
            file.write_all(&head.bytes)?;
            file.set_len(head.file_len)?;
            Ok(file)
        })();
        let file = match created {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e).with_context(|| format!("creating {}", tmp.display()));
            }
        };
        let at = |k: &str| head.at(k);
        let mut out = BatchWriter {
            spans: Spans::new(file),
            layout,
            l: l as u64,
            ids_at: at("input_ids"),
            values_at: at("values"),
            species_at: at("species"),
            mask_at: at("attention_mask"),
            lengths_at: at("lengths"),
            offsets_at: at("offsets"),
            cells: 0,
            tokens: 0,
            unsent: 0,
        };
        let (batches, received) = sync_channel::<Vec<TokenizedCell>>(BATCHES_IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name("cells-writer".into())
            .spawn(move || {
                for rows in received {
                    out.write(&rows)?;
                }
                Ok(out.spans.file)
            });
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e).context("starting the thread that writes the cells");
            }
        };
        Ok(Self {
            tmp,
            path: path.to_path_buf(),
            shape,
            l,
            cells_pushed: 0,
            tokens_pushed: 0,
            pending: Vec::with_capacity(WRITE_BATCH),
            batches: Some(batches),
            thread: Some(thread),
            finished: false,
        })
    }

    /// Adds the next cell (a copy of it: see [`Self::push_owned`]).
    pub fn push(&mut self, cell: &TokenizedCell) -> anyhow::Result<()> {
        self.push_owned(TokenizedCell {
            input_ids: cell.input_ids.clone(),
            values: cell.values.clone(),
            species: cell.species,
            label: None,
        })
    }

    /// Adds the next cell, taking it (labels go into the header, not here).
    pub fn push_owned(&mut self, cell: TokenizedCell) -> anyhow::Result<()> {
        if self.cells_pushed >= self.shape.cells {
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
        self.cells_pushed += 1;
        self.tokens_pushed += cell.len();
        self.pending.push(cell);
        if self.pending.len() == WRITE_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands the pending cells to the writing thread; reports its error if it stopped.
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::replace(&mut self.pending, Vec::with_capacity(WRITE_BATCH));
        let sent = self.batches.as_ref().map(|b| b.send(rows));
        if matches!(sent, Some(Ok(()))) {
            return Ok(());
        }
        // The thread stopped on an error (or is gone): that error is the answer.
        self.join().map(|_| ())
    }

    /// Stops the writing thread (after what it was given) and takes the file back.
    fn join(&mut self) -> anyhow::Result<File> {
        self.batches = None;
        let thread = self
            .thread
            .take()
            .with_context(|| format!("{}: the writing thread is gone", self.tmp.display()))?;
        match thread.join() {
            Ok(written) => written.with_context(|| format!("writing {}", self.tmp.display())),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Writes what is buffered, syncs, and renames the file into place; fails (leaving nothing
    /// behind) unless exactly the announced cells and tokens were pushed.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.flush()?;
        let file = self.join()?;
        let tokens_expected = self.shape.tokens;
        if self.cells_pushed != self.shape.cells || self.tokens_pushed != tokens_expected {
            bail!(
                "{}: {} cells ({} tokens) written, {} ({}) announced",
                self.tmp.display(),
                self.cells_pushed,
                self.tokens_pushed,
                self.shape.cells,
                tokens_expected
            );
        }
        tracing::debug!(path = %self.tmp.display(), "written; syncing");
        file.sync_all()
            .with_context(|| format!("writing {}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("renaming to {}", self.path.display()))?;
        self.finished = true;
        Ok(())
    }
}

/// The writing thread's side of a [`CellsWriter`]: where each tensor starts in the file, and
/// how many cells and tokens are already there.
struct BatchWriter {
    spans: Spans,
    layout: CellsLayout,
    /// Padded width.
    l: u64,
    ids_at: u64,
    values_at: u64,
    species_at: u64,
    mask_at: u64,
    lengths_at: u64,
    offsets_at: u64,
    cells: u64,
    tokens: u64,
    /// Bytes written since the kernel was last asked to start writing them to disk.
    unsent: u64,
}

/// Bytes written between two requests to start writeback ([`start_writeback`]).
pub(super) const WRITEBACK_EVERY: u64 = 64 << 20;

impl BatchWriter {
    fn write(&mut self, rows: &[TokenizedCell]) -> std::io::Result<()> {
        let (first, layout, l) = (self.cells, self.layout, self.l);
        let out = &mut self.spans;
        // Where cell `r` of the batch starts, in elements of a token tensor.
        let mut pos = Vec::with_capacity(rows.len());
        let mut tok = self.tokens;
        for (r, c) in rows.iter().enumerate() {
            pos.push(match layout {
                CellsLayout::Padded => (first + r as u64) * l,
                CellsLayout::Ragged => tok,
            });
            tok += c.len() as u64;
        }
        if layout == CellsLayout::Ragged && cfg!(target_endian = "little") {
            // The cells' own memory is the file's bytes: written from where it lies, with no
            // copy into the buffer (a seventh of the writing thread's time).
            let at = |start: u64| start + self.tokens * 4;
            out.write_slices(at(self.ids_at), rows.iter().map(|c| c.input_ids.as_slice()))?;
            out.write_slices(at(self.values_at), rows.iter().map(|c| c.values.as_slice()))?;
        } else {
            for (c, &p) in rows.iter().zip(&pos) {
                match layout {
                    CellsLayout::Padded => out.put(self.ids_at + p * 8, |b| {
                        put_le(b, &c.input_ids, |t| i64::from(t).to_le_bytes())
                    })?,
                    CellsLayout::Ragged => out.put(self.ids_at + p * 4, |b| {
                        put_le(b, &c.input_ids, |t| (t as i32).to_le_bytes())
                    })?,
                }
            }
            out.flush()?;
            for (c, &p) in rows.iter().zip(&pos) {
                out.put(self.values_at + p * 4, |b| {
                    put_le(b, &c.values, f32::to_le_bytes)
                })?;
            }
            out.flush()?;
        }
        for (r, c) in rows.iter().enumerate() {
            let code = i64::from(c.species.code());
            out.put(self.species_at + (first + r as u64) * 8, |b| {
                b.extend_from_slice(&code.to_le_bytes())
            })?;
        }
        out.flush()?;
        match layout {
            CellsLayout::Padded => {
                for (c, &p) in rows.iter().zip(&pos) {
                    out.put(self.mask_at + p * 8, |b| {
                        (0..c.len()).for_each(|_| b.extend_from_slice(&1i64.to_le_bytes()))
                    })?;
                }
                out.flush()?;
                for (r, c) in rows.iter().enumerate() {
                    out.put(self.lengths_at + (first + r as u64) * 8, |b| {
                        b.extend_from_slice(&(c.len() as i64).to_le_bytes())
                    })?;
                }
            }
            CellsLayout::Ragged => {
                for (r, &p) in pos.iter().enumerate() {
                    out.put(self.offsets_at + (first + r as u64) * 8, |b| {
                        b.extend_from_slice(&(p as i64).to_le_bytes())
                    })?;
                }
                // The end offset, rewritten by each batch; the last one stays.
                out.put(self.offsets_at + (first + rows.len() as u64) * 8, |b| {
                    b.extend_from_slice(&(tok as i64).to_le_bytes())
                })?;
            }
        }
        out.flush()?;
        self.cells += rows.len() as u64;
        self.unsent += (tok - self.tokens) * 8 + rows.len() as u64 * 16;
        self.tokens = tok;
        if self.unsent >= WRITEBACK_EVERY {
            self.unsent = 0;
            start_writeback(&self.spans.file, 0, 0);
        }
        Ok(())
    }
}

/// Asks the kernel to start writing the file's dirty pages (`len` bytes from `from`; 0: to the
/// end) to disk now, without waiting: the
/// output (about 1 GB per million cells) is then on its way while cells are still ranked, and
/// the `fsync` before the rename has little left to wait for (it waited a quarter second on a
/// 1 GB output). A hint: nothing depends on it (and off Linux it does nothing).
pub(super) fn start_writeback(file: &File, from: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the duration of the call; the call only starts
        // writeback of the file's pages and reads or writes no memory of ours.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                from as i64,
                len as i64,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, len);
}

/// Appends `xs` to `b` as `W`-byte little-endian numbers: one resize, then a loop the
/// compiler turns into vector copies (a push per number was a tenth of a 1 GB tokenization).
fn put_le<T: Copy, const W: usize>(b: &mut Vec<u8>, xs: &[T], le: impl Fn(T) -> [u8; W]) {
    let at = b.len();
    b.resize(at + xs.len() * W, 0);
    for (d, &x) in b[at..].chunks_exact_mut(W).zip(xs) {
        d.copy_from_slice(&le(x));
    }
}

impl Drop for CellsWriter {
    fn drop(&mut self) {
        if !self.finished {
            // Let the thread stop before the file goes.
            self.batches = None;
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Coalesces positioned writes: nearby spans go out as one write (the gap zero-filled), distant
/// ones as separate writes that leave the gap unwritten. Flush between tensors: a gap filled
/// with zeros must not cover another tensor's data.
struct Spans {
    file: File,
    at: u64,
    buf: Vec<u8>,
}

impl Spans {
    fn new(file: File) -> Self {
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

    /// Writes `slices` end to end at `pos` (after what is buffered), as their bytes lie in
    /// memory (little-endian numbers on a little-endian target).
    fn write_slices<'a, T: bytemuck::Pod>(
        &mut self,
        pos: u64,
        slices: impl Iterator<Item = &'a [T]>,
    ) -> std::io::Result<()> {
        self.flush()?;
        let mut parts: Vec<IoSlice<'a>> = slices
            .map(|s| IoSlice::new(bytemuck::cast_slice(s)))
            .filter(|s| !s.is_empty())
            .collect();
        self.file.seek(SeekFrom::Start(pos))?;
        // A system takes at most so many parts per call (IOV_MAX is 1024 on Linux).
        for group in parts.chunks_mut(512) {
            let mut rest = group;
            while !rest.is_empty() {
                match self.file.write_vectored(rest) {
                    Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                    Ok(n) => IoSlice::advance_slices(&mut rest, n),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
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
