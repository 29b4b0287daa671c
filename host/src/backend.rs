//! The one place the compute device is chosen.

use burn::prelude::Device;

/// The training/inference device: CUDA GPU 0 with the `gpu` feature, else Burn's Flex CPU
/// backend (pure Rust, SIMD + rayon), which measured fastest on our 2-core hosts.
pub fn device() -> Device {
    #[cfg(feature = "gpu")]
    {
        Device::cuda(0)
    }
    #[cfg(not(feature = "gpu"))]
    {
        Device::flex()
    }
}

/// Name of the device for reports.
pub fn name() -> &'static str {
    if cfg!(feature = "gpu") {
        "burn cuda (GPU 0)"
    } else {
        "burn flex (CPU)"
    }
}
