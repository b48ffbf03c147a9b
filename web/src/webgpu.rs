//! Where the worker runs the model: WebGPU or burn's flex CPU backend. Probes the browser's
//! WebGPU adapter, decides for [`BackendChoice::Auto`] whether it is worth using, and
//! initialises burn's wgpu runtime once (a second initialisation fails in burn 0.22).

use burn::prelude::Device;

use crate::protocol::BackendChoice;

/// How the page names the CPU backend.
pub const CPU: &str = "CPU: burn flex (wasm, single thread)";

/// The device of a run.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// Where the model runs.
    pub device: Device,
    /// Whether it is WebGPU (whose results must be read back asynchronously).
    pub gpu: bool,
    /// The largest buffer the device can bind, in bytes (WebGPU only): batches are cut so
    /// that their attention scores fit ([`Chosen::max_scores_per_head`]).
    pub max_buffer: Option<u64>,
    /// What the page shows: the backend, the adapter, and why WebGPU was not used.
    pub label: String,
}

impl Chosen {
    fn cpu(why_not_gpu: Option<String>) -> Self {
        Self {
            device: Device::flex(),
            gpu: false,
            max_buffer: None,
            label: match why_not_gpu {
                Some(why) => format!("{CPU}; {why}"),
                None => CPU.to_string(),
            },
        }
    }
}

/// What the browser's adapter says about itself (`GPUAdapterInfo`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdapterInfo {
    /// `vendor`, e.g. `nvidia`, `google`.
    pub vendor: String,
    /// `architecture`, e.g. `ampere`, `swiftshader`.
    pub architecture: String,
    /// `description` (often empty: browsers hide it).
    pub description: String,
    /// `isFallbackAdapter`.
    pub fallback: bool,
    /// The smaller of `limits.maxBufferSize` and `limits.maxStorageBufferBindingSize`.
    pub max_buffer: Option<u64>,
}

impl AdapterInfo {
    /// A software rasteriser: it runs the GPU's work on the CPU, slower than flex.
    pub fn is_software(&self) -> bool {
        let text = format!("{} {} {}", self.vendor, self.architecture, self.description)
            .to_ascii_lowercase();
        self.fallback
            || [
                "swiftshader",
                "llvmpipe",
                "lavapipe",
                "software",
                "microsoft basic render",
            ]
            .iter()
            .any(|s| text.contains(s))
    }

    /// `vendor architecture`, or "unnamed adapter".
    pub fn name(&self) -> String {
        let name = [&self.vendor, &self.architecture, &self.description]
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        if name.is_empty() {
            "unnamed adapter".into()
        } else {
            name
        }
    }
}

/// What to do with a probe's result for a choice: `Ok(adapter)` to run on WebGPU, `Err(why)`
/// to run on the CPU and say why.
pub fn decide(
    choice: BackendChoice,
    probe: Result<AdapterInfo, String>,
) -> Result<AdapterInfo, String> {
    match (choice, probe) {
        (BackendChoice::Cpu, _) => Err(String::new()),
        (_, Err(e)) => Err(format!("WebGPU not available: {e}")),
        (BackendChoice::Auto, Ok(a)) if a.is_software() => Err(format!(
            "WebGPU adapter `{}` is a software renderer, slower than the CPU backend (choose \
             WebGPU to use it anyway)",
            a.name()
        )),
        (_, Ok(a)) => Ok(a),
    }
}

impl Chosen {
    /// The attention-score budget per head for a model of `heads` heads: a quarter of the
    /// largest buffer, in f32 (the allocator rounds buffers up into pages, and a batch holds
    /// a few score-sized tensors at once).
    pub fn max_scores_per_head(&self, heads: usize) -> Option<usize> {
        self.max_buffer
            .map(|b| (b / 4 / 4 / heads.max(1) as u64) as usize)
    }
}

/// The device for `choice`. Never fails: without WebGPU the run goes to the CPU, and the label
/// says why.
pub async fn choose(choice: BackendChoice) -> Chosen {
    if choice == BackendChoice::Cpu {
        return Chosen::cpu(None);
    }
    let adapter = match decide(choice, probe().await) {
        Ok(a) => a,
        Err(why) => return Chosen::cpu(Some(why)),
    };
    match device().await {
        Ok(device) => Chosen {
            device,
            gpu: true,
            max_buffer: adapter.max_buffer,
            label: format!("WebGPU: {} (burn wgpu)", adapter.name()),
        },
        Err(e) => Chosen::cpu(Some(format!(
            "WebGPU adapter `{}` could not be initialised: {e}",
            adapter.name()
        ))),
    }
}

#[cfg(target_family = "wasm")]
mod browser {
    use std::cell::RefCell;

    use burn::prelude::Device;
    use js_sys::{Function, Promise, Reflect};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    use super::AdapterInfo;

    thread_local! {
        /// burn's wgpu runtime, initialised on first use (or why it could not be).
        static DEVICE: RefCell<Option<Result<Device, String>>> = const { RefCell::new(None) };
    }

    fn get(obj: &JsValue, key: &str) -> JsValue {
        Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    }

    fn text(obj: &JsValue, key: &str) -> String {
        get(obj, key).as_string().unwrap_or_default()
    }

    /// Asks `navigator.gpu` for an adapter and reads its info.
    pub async fn probe() -> Result<AdapterInfo, String> {
        let gpu = get(&get(&js_sys::global(), "navigator"), "gpu");
        if gpu.is_undefined() || gpu.is_null() {
            return Err(
                "this browser exposes no WebGPU here (navigator.gpu is missing); \
                        use a recent Chromium, Edge or Safari"
                    .into(),
            );
        }
        let request: Function = get(&gpu, "requestAdapter")
            .dyn_into()
            .map_err(|_| "navigator.gpu.requestAdapter is not a function".to_string())?;
        let promise: Promise = request
            .call0(&gpu)
            .map_err(|e| format!("requestAdapter failed: {e:?}"))?
            .dyn_into()
            .map_err(|_| "requestAdapter did not return a promise".to_string())?;
        let adapter = JsFuture::from(promise)
            .await
            .map_err(|e| format!("requestAdapter failed: {e:?}"))?;
        if adapter.is_null() || adapter.is_undefined() {
            return Err("the browser has no WebGPU adapter (in Chromium, check \
                        chrome://gpu; headless Chromium needs --enable-unsafe-webgpu)"
                .into());
        }
        let info = get(&adapter, "info");
        let fallback = get(&info, "isFallbackAdapter")
            .as_bool()
            .or_else(|| get(&adapter, "isFallbackAdapter").as_bool())
            .unwrap_or(false);
        let limits = get(&adapter, "limits");
        let max_buffer = ["maxBufferSize", "maxStorageBufferBindingSize"]
            .iter()
            .filter_map(|k| get(&limits, k).as_f64())
            .map(|v| v as u64)
            .min();
        Ok(AdapterInfo {
            vendor: text(&info, "vendor"),
            architecture: text(&info, "architecture"),
            description: text(&info, "description"),
            fallback,
            max_buffer,
        })
    }

    /// burn's wgpu device, initialised once per worker.
    pub async fn device() -> Result<Device, String> {
        if let Some(d) = DEVICE.with_borrow(Clone::clone) {
            return d;
        }
        let d = Device::wgpu_options()
            .init_async()
            .await
            .map_err(|e| format!("{e}"));
        DEVICE.with_borrow_mut(|slot| *slot = Some(d.clone()));
        d
    }
}

#[cfg(target_family = "wasm")]
use browser::{device, probe};

/// Natively (the engine's unit tests) there is no browser to ask.
#[cfg(not(target_family = "wasm"))]
async fn probe() -> Result<AdapterInfo, String> {
    Err("WebGPU runs in the browser only".into())
}

#[cfg(not(target_family = "wasm"))]
async fn device() -> Result<Device, String> {
    Err("WebGPU runs in the browser only".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(vendor: &str, arch: &str, fallback: bool) -> AdapterInfo {
        AdapterInfo {
            vendor: vendor.into(),
            architecture: arch.into(),
            description: String::new(),
            fallback,
            max_buffer: Some(1 << 30),
        }
    }

    #[test]
    fn a_buffer_limit_becomes_a_score_budget_that_splits_long_batches() {
        let gpu = Chosen {
            device: Device::flex(),
            gpu: true,
            max_buffer: adapter("google", "swiftshader", false).max_buffer,
            label: String::new(),
        };
        // 1 GiB, 12 heads: a quarter of it in f32 is 5.6 M scores per head, one cell of
        // 2048 genes (2049² = 4.2 M), not two.
        let budget = gpu.max_scores_per_head(12).unwrap();
        assert_eq!(budget, (1usize << 30) / 16 / 12);
        assert!((2049 * 2049..2 * 2049 * 2049).contains(&budget));
        assert_eq!(Chosen::cpu(None).max_scores_per_head(12), None);
    }

    #[test]
    fn auto_skips_software_adapters_and_explicit_webgpu_does_not() {
        let swift = adapter("google", "swiftshader", false);
        let nvidia = adapter("nvidia", "ampere", false);
        assert!(swift.is_software() && !nvidia.is_software());
        assert!(adapter("", "", true).is_software(), "isFallbackAdapter");
        let why = decide(BackendChoice::Auto, Ok(swift.clone())).unwrap_err();
        assert!(
            why.contains("google swiftshader") && why.contains("software"),
            "{why}"
        );
        assert_eq!(decide(BackendChoice::Webgpu, Ok(swift.clone())), Ok(swift));
        assert_eq!(decide(BackendChoice::Auto, Ok(nvidia.clone())), Ok(nvidia));
        let why = decide(BackendChoice::Webgpu, Err("no adapter".into())).unwrap_err();
        assert_eq!(why, "WebGPU not available: no adapter");
        assert!(decide(BackendChoice::Cpu, Ok(adapter("nvidia", "ampere", false))).is_err());
        assert_eq!(adapter("", "", false).name(), "unnamed adapter");
    }

    #[test]
    fn natively_every_choice_runs_on_the_cpu() {
        let block = |choice| {
            let mut f = std::pin::pin!(choose(choice));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            match f.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(c) => c,
                std::task::Poll::Pending => panic!("no await is pending natively"),
            }
        };
        assert_eq!(block(BackendChoice::Cpu).label, CPU);
        let auto = block(BackendChoice::Auto);
        assert!(!auto.gpu);
        assert!(auto.label.starts_with(CPU) && auto.label.contains("browser only"));
    }
}
