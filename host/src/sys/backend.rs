//! The one place the compute device is chosen.
//!
//! Features: none = Burn's Flex CPU backend; `gpu` = wgpu (Vulkan, or whatever API the
//! machine's GPU offers), which builds offline; `gpu-cuda` = CubeCL CUDA, whose build
//! script downloads an LLVM bundle (`tracel-llvm-bundler`), so it builds only where that
//! download is allowed.

use burn::prelude::Device;

/// The training/inference device: a GPU with `gpu` / `gpu-cuda`, else Burn's Flex CPU
/// backend (pure Rust, SIMD + rayon), which measured fastest on our 2-core hosts.
pub fn device() -> Device {
    #[cfg(feature = "gpu-cuda")]
    {
        Device::cuda(0)
    }
    #[cfg(all(feature = "gpu", not(feature = "gpu-cuda")))]
    {
        Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
    }
    #[cfg(not(any(feature = "gpu", feature = "gpu-cuda")))]
    {
        Device::flex()
    }
}

/// Name of the device for reports (on the CPU, with or without `emoedge_train_ops`).
pub fn name() -> &'static str {
    if cfg!(feature = "gpu-cuda") {
        "burn cuda (GPU 0)"
    } else if cfg!(feature = "gpu") {
        "burn wgpu (default GPU)"
    } else if emoedge_train_ops::enabled() {
        "burn flex (CPU) + emoedge training kernels"
    } else {
        "burn flex (CPU), Burn's own operations"
    }
}
