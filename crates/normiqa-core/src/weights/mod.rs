//! Reading PyTorch weights without libtorch.
//!
//! [`read_pth`] loads a `torch.save` state dict (zip format of torch ≥ 1.6, or the legacy
//! pre-1.6 format) into [`StateDict`]: named, contiguous, little-endian [`RawTensor`]s.
//! [`pickle`] is the small pickle VM underneath.

pub mod pickle;
pub mod pth;

pub use pth::{
    bf16_to_f32, f16_to_f32, read_pth, read_pth_bytes, read_pth_with,
    read_pth_with_top, DType, PthError,
    PthErrorKind, RawTensor, ReadOptions, StateDict,
};
