//! Device choice: the binary, not the library, picks where tensors live.

use burn::prelude::*;
use clap::ValueEnum;

/// Compute backend, chosen at run time among those compiled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Backend {
    /// Pure-Rust CPU backend (always available in default builds).
    #[default]
    Cpu,
    /// NVIDIA GPU (build with `--features cuda`).
    Cuda,
    /// Vulkan/Metal/DX12 GPU through wgpu (build with `--features wgpu`).
    Wgpu,
}

/// The device of a backend, or an error saying how to build with it.
pub fn device(backend: Backend, gpu: usize) -> anyhow::Result<Device> {
    match backend {
        #[cfg(feature = "flex")]
        Backend::Cpu => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        Backend::Cuda => Ok(Device::cuda(gpu)),
        #[cfg(feature = "wgpu")]
        Backend::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[allow(unreachable_patterns)]
        other => {
            let _ = gpu;
            anyhow::bail!(
                "this genecompass-train was built without the {other:?} backend; rebuild with \
                 `cargo build --release -p genecompass-trainer --features {}`",
                format!("{other:?}").to_lowercase()
            )
        }
    }
}
