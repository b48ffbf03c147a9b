//! The ragged CELLS layout filled run by run: pass 1 gives every cell's length, so the header,
//! `offsets` and `species` are written first, and the tokenizer ranks each chunk's cells into
//! one reused buffer of the chunk's tokens ([`TokenSlots`]), which a thread writes out as two
//! runs (ids, values) while the next chunk ranks. [`super::CellsWriter`] took each cell as two
//! vectors of its own, allocated and zeroed per cell, written out as two more parts of a
//! vectored write.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Context, bail};
use genecompass_core::cells::Species;
use genecompass_core::tokenize::TokenSlots;

use super::writer::{Header, WRITEBACK_EVERY, start_writeback};
use super::{CellsLayout, CellsShape};

/// Buffers a [`RaggedWriter`] has out at most: the one being filled, the one being written, and
/// one queued between them (memory: three chunks' tokens).
const BUFFERS: usize = 3;

/// A ragged CELLS file filled run by run (see the module docs). The file is a temporary one
/// renamed into place by [`RaggedWriter::finish`], and removed if the writer is dropped before.
pub struct RaggedWriter {
    tmp: PathBuf,
    path: PathBuf,
    /// Tokens over all cells.
    tokens: usize,
    /// The tokens handed out so far (runs come in order).
    opened: usize,
    /// Filled runs to the writing thread.
    runs: Option<SyncSender<RunBuffer>>,
    /// Buffers the writing thread is done with.
    spare: Receiver<RunBuffer>,
    /// Buffers made so far (at most [`BUFFERS`]).
    made: usize,
    thread: Option<JoinHandle<std::io::Result<File>>>,
    finished: bool,
}

/// One run of tokens, in memory until the writing thread has written it.
pub struct RunBuffer {
    tokens: Range<usize>,
    ids: Vec<u32>,
    values: Vec<f32>,
}

impl TokenSlots for RunBuffer {
    fn slots(&mut self) -> (&mut [u32], &mut [f32]) {
        let n = self.tokens.len();
        (&mut self.ids[..n], &mut self.values[..n])
    }
}

impl RaggedWriter {
    /// Creates the temporary file with its header, `offsets` (from each cell's token count,
    /// `lengths`, which must sum to `shape.tokens` over `shape.cells` cells) and `species`
    /// (every cell `species`), ready for [`Self::run`].
    pub fn create(
        path: &Path,
        shape: CellsShape,
        lengths: impl Iterator<Item = usize>,
        species: Species,
        labels: Option<Vec<String>>,
        metadata: HashMap<String, String>,
    ) -> anyhow::Result<Self> {
        let head = Header::new(CellsLayout::Ragged, shape, labels, metadata)?;
        let mut offsets = Vec::with_capacity((shape.cells + 1) * 8);
        let mut end = 0i64;
        offsets.extend_from_slice(&end.to_le_bytes());
        for l in lengths {
            end += l as i64;
            offsets.extend_from_slice(&end.to_le_bytes());
        }
        if offsets.len() != (shape.cells + 1) * 8 || end as usize != shape.tokens {
            bail!(
                "{}: {} cells of {end} tokens given for {} cells of {} tokens",
                path.display(),
                offsets.len() / 8 - 1,
                shape.cells,
                shape.tokens
            );
        }
        let code = i64::from(species.code()).to_le_bytes();
        let species: Vec<u8> = (0..shape.cells).flat_map(|_| code).collect();
        let tmp = path.with_extension("safetensors.tmp");
        let created = (|| -> std::io::Result<File> {
            let mut file = File::create(&tmp)?;
            file.set_len(head.file_len)?;
            for (at, bytes) in [
                (0, &head.bytes),
                (head.at("offsets"), &offsets),
                (head.at("species"), &species),
            ] {
                file.seek(SeekFrom::Start(at))?;
                file.write_all(bytes)?;
            }
            Ok(file)
        })();
        let file = match created {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e).with_context(|| format!("creating {}", tmp.display()));
            }
        };
        let (runs, received) = sync_channel::<RunBuffer>(1);
        let (done, spare) = sync_channel::<RunBuffer>(BUFFERS);
        let (ids_at, values_at) = (head.at("input_ids"), head.at("values"));
        let thread = std::thread::Builder::new()
            .name("cells-writer".into())
            .spawn(move || write_runs(file, ids_at, values_at, received, done));
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
            tokens: shape.tokens,
            opened: 0,
            runs: Some(runs),
            spare,
            made: 0,
            thread: Some(thread),
            finished: false,
        })
    }

    /// A buffer for tokens `tokens`, the run after the last one, which the tokenizer fills and
    /// hands to [`Self::filled`]; waits for the writing thread when [`BUFFERS`] are out.
    pub fn run(&mut self, tokens: Range<usize>) -> anyhow::Result<RunBuffer> {
        if tokens.start != self.opened || tokens.end > self.tokens {
            bail!(
                "{}: tokens {tokens:?} asked for after {} of {}",
                self.tmp.display(),
                self.opened,
                self.tokens
            );
        }
        let mut b = match self.spare.try_recv() {
            Ok(b) => b,
            Err(_) if self.made < BUFFERS => {
                self.made += 1;
                RunBuffer {
                    tokens: 0..0,
                    ids: Vec::new(),
                    values: Vec::new(),
                }
            }
            Err(_) => match self.spare.recv() {
                Ok(b) => b,
                // The thread stopped on an error: that error is the answer.
                Err(_) => return Err(self.join().err().unwrap_or_else(|| self.gone())),
            },
        };
        // Grown (zeroed) only past the longest run so far: a reused buffer is overwritten.
        let n = tokens.len();
        if b.ids.len() < n {
            b.ids.resize(n, 0);
            b.values.resize(n, 0.0);
        }
        self.opened = tokens.end;
        b.tokens = tokens;
        Ok(b)
    }

    /// Queues a filled run for writing.
    pub fn filled(&mut self, run: RunBuffer) -> anyhow::Result<()> {
        let sent = self.runs.as_ref().map(|r| r.send(run));
        if matches!(sent, Some(Ok(()))) {
            return Ok(());
        }
        Err(self.join().err().unwrap_or_else(|| self.gone()))
    }

    fn gone(&self) -> anyhow::Error {
        anyhow::anyhow!("{}: the writing thread is gone", self.tmp.display())
    }

    /// Stops the writing thread (after what it was given) and takes the file back.
    fn join(&mut self) -> anyhow::Result<File> {
        self.runs = None;
        let thread = self.thread.take().ok_or_else(|| self.gone())?;
        match thread.join() {
            Ok(written) => written.with_context(|| format!("writing {}", self.tmp.display())),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Writes what is queued, syncs, and renames the file into place; fails (leaving nothing
    /// behind) unless every token was handed out (and, the tokenizer having returned, filled).
    pub fn finish(mut self) -> anyhow::Result<()> {
        let file = self.join()?;
        if self.opened != self.tokens {
            bail!(
                "{}: {} tokens written, {} announced",
                self.tmp.display(),
                self.opened,
                self.tokens
            );
        }
        file.sync_all()
            .with_context(|| format!("writing {}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("renaming to {}", self.path.display()))?;
        self.finished = true;
        Ok(())
    }
}

/// The writing thread: each run's ids and values where they go, the buffer then handed back.
fn write_runs(
    mut file: File,
    ids_at: u64,
    values_at: u64,
    runs: Receiver<RunBuffer>,
    done: SyncSender<RunBuffer>,
) -> std::io::Result<File> {
    let mut unsent = 0u64;
    for run in runs {
        let n = run.tokens.len();
        let at = |base: u64| base + run.tokens.start as u64 * 4;
        // Little-endian numbers are the file's bytes as they lie in memory.
        let ids: &[u8] = bytemuck::cast_slice(&run.ids[..n]);
        let values: &[u8] = bytemuck::cast_slice(&run.values[..n]);
        for (pos, bytes) in [(at(ids_at), ids), (at(values_at), values)] {
            if cfg!(target_endian = "little") {
                file.seek(SeekFrom::Start(pos))?;
                file.write_all(bytes)?;
            } else {
                let le: Vec<u8> = bytes
                    .chunks_exact(4)
                    .flat_map(|w| u32::from_ne_bytes(w.try_into().expect("4 bytes")).to_le_bytes())
                    .collect();
                file.seek(SeekFrom::Start(pos))?;
                file.write_all(&le)?;
            }
        }
        unsent += n as u64 * 8;
        if unsent >= WRITEBACK_EVERY {
            unsent = 0;
            start_writeback(&file, 0, 0);
        }
        // The tokenizer may have stopped taking buffers back (it failed): nothing to do then.
        let _ = done.try_send(run);
    }
    Ok(file)
}

impl Drop for RaggedWriter {
    fn drop(&mut self) {
        if !self.finished {
            // Let the thread stop before the file goes.
            self.runs = None;
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
#[path = "ragged_tests.rs"]
mod tests;
