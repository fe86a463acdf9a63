//! Errors of the model side: inputs a model cannot take, configurations it does not support.

use super::BackboneName;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model cannot be built on this backbone.
    #[error("{model} cannot use the backbone '{backbone}' (supported: {supported})")]
    UnsupportedBackbone {
        model: &'static str,
        backbone: BackboneName,
        supported: String,
    },
    /// The model takes inputs of one fixed size only.
    #[error(
        "{model} takes {size}x{size} crops, got a {height}x{width} input \
         (score larger images through their crops: HyperIqa::forward_crops)"
    )]
    InputSize {
        model: &'static str,
        size: i64,
        height: i64,
        width: i64,
    },
    /// An image smaller than the crops cut from it.
    #[error(
        "a {height}x{width} image is smaller than the {size}x{size} crops {model} takes; \
         resize it first (the HyperIQA authors resize every image to 512x384)"
    )]
    ImageTooSmall {
        model: &'static str,
        size: i64,
        height: i64,
        width: i64,
    },
    /// A crop position outside the image.
    #[error(
        "a {size}x{size} crop at (top {top}, left {left}) does not fit in a {height}x{width} image"
    )]
    CropOutside {
        size: i64,
        top: i64,
        left: i64,
        height: i64,
        width: i64,
    },
    /// A precision the model's eval path cannot run at.
    #[error(
        "--precision {precision}: {model} on the backbone '{backbone}' does not run in {precision} \
         (bf16 needs a backbone whose BatchNorm folds: EfficientNet-Lite or ResNet; int8 is built \
         for EfficientNet-Lite; both with LinearityIQA or the plain regressor); use --precision fp32"
    )]
    Precision {
        model: &'static str,
        backbone: BackboneName,
        precision: super::Precision,
    },
    /// libtorch's quantised operators failed (packing the weights, selecting the engine).
    #[error(transparent)]
    Quantized(#[from] super::backbone::quantized::QuantError),
    /// A count that must be positive.
    #[error("{what} must be at least 1, got {value}")]
    NotPositive { what: &'static str, value: i64 },
    /// Partial fine-tuning asked of a network that cannot be cut there.
    #[error("freeze_blocks = {k}: {reason}")]
    CannotFreeze { k: usize, reason: String },
}
