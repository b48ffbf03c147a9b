//! Allocator settings for training and tokenizing on the CPU.
//!
//! A training step allocates and frees the same few hundred megabytes of activations and
//! gradients over and over. glibc hands every freed block above its mmap threshold back to
//! the kernel and takes it again through page faults (the kernel zeroes each page): on the
//! Small-shape benchmark's cells that churn was about a fifth of a step's time. Keeping freed
//! memory in the process made those steps 1.15–1.3× faster, for 4 % more peak RSS. The
//! tokenizer's chunks (tens of MB read, decoded and freed per chunk) churn the same way, and
//! so do inference batches (the host encoder copies each layer's weights per batch): `embed`
//! ran 1.10–1.18× faster on the Small benchmark shape with it, and Base showed no clear change
//! within the noise (bench/inference/RESULTS.md). The CLI sets it once, for every command.

/// Keeps freed memory for reuse within the process (glibc on Linux; elsewhere a no-op).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc_keep_freed_memory();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; called before the training
    // allocations, it affects nothing already allocated.
    unsafe {
        // Blocks up to 32 MiB (glibc's maximum) come from the heap, not from fresh mappings.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        // Return heap memory to the kernel only once 2 GiB of it is free at the top...
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        // ...and grow the heap in 1 GiB steps (address space; pages are touched on use).
        libc::mallopt(libc::M_TOP_PAD, 1 << 30);
    }
}
