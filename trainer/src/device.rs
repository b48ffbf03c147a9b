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
        Backend::Cuda => {
            check_cuda_libraries()?;
            Ok(Device::cuda(gpu))
        }
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

/// cubecl loads the CUDA libraries on its device thread and panics there when one is missing;
/// this says which one and what to do before any work starts.
#[cfg(feature = "cuda")]
fn check_cuda_libraries() -> anyhow::Result<()> {
    // SAFETY: these only try to dlopen the libraries by name and close them again.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        anyhow::bail!(
            "--backend cuda: the NVIDIA driver library (libcuda.so.1) was not found. Install the \
             NVIDIA driver (or add the folder holding libcuda.so.1 to LD_LIBRARY_PATH), or run \
             with --backend cpu"
        );
    }
    #[cfg(feature = "cuda-nvrtc")]
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        anyhow::bail!(
            "--backend cuda: NVRTC (libnvrtc.so, CUDA's run-time compiler) was not found. Install \
             the CUDA toolkit or the `nvidia-cuda-nvrtc` wheel and add the folder holding \
             libnvrtc.so to LD_LIBRARY_PATH, or run with --backend cpu"
        );
    }
    Ok(())
}
