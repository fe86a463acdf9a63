//! int8 inference (`--precision int8`): a folded backbone ([`super::fused`]) whose convolutions
//! run on libtorch's quantised kernels with the oneDNN engine (VNNI dot products on AVX-512 VNNI
//! CPUs, `vpmaddubsw` on AVX2-only ones), reached through `src/native/quantized.cpp`. Built for
//! EfficientNet-Lite (every other backbone refuses int8, naming the option).
//!
//! What is quantised, and how (post-training, no calibration images):
//! - Weights: per output channel, symmetric, 8 bits (scale `max|w|/127`).
//! - Activations: per tensor, unsigned, on `0..=top` where `top` is 255 on CPUs whose oneDNN
//!   kernels use VNNI and 127 elsewhere ([`activation_top`]: without VNNI, 16-bit pair sums
//!   saturate on 8-bit activations). Their ranges come without data:
//!   - the input: the range of a normalised image, `[(0 − mean)/std, (1 − mean)/std]` over the
//!     three channels;
//!   - a convolution followed by ReLU6: `[0, 6]` (with `top` 255 the fused ReLU's output
//!     saturates at 6, which is ReLU6; with 127 the map is clamped to it);
//!   - a convolution without activation (the MBConv projections): from its BatchNorm, whose
//!     output has per-channel mean β and standard deviation |γ| over the data its statistics
//!     were gathered on: `[min β − k|γ|, max β + k|γ|]`, `k` = [`SPREAD`] (the data-free ranges
//!     of Nagel et al., "Data-Free Quantization Through Weight Equalization and Bias
//!     Correction", ICCV 2019);
//!   - a residual sum: the sum of its two inputs' ranges.
//! - The two feature maps leave dequantised (fp32): pooling, heads and mapping run in fp32.
//!
//! What it costs (RESULTS.md, "int8"): these per-tensor ranges are wide (±20 to ±110 on the
//! residual stream of Lite0), and scores move by 1.3–1.7 MOS points on average from fp32's. The
//! CLIVE exp-0 test SROCC moved by +0.0010 on an AVX-512 VNNI CPU and +0.0087 with oneDNN held
//! to AVX2, and by up to ±0.009 across values of [`SPREAD`]: so `--precision auto` does not
//! pick int8 ([`super::super::precision`]). Calibrated ranges are the known next step.

use std::ffi::{c_char, c_void, CStr};

use tch::{Kind, Tensor};
use torch_sys::C_tensor;

use super::fused::{FrozenBackbone, FusedConv};

/// Standard deviations on each side of a BatchNorm's mean that an activation's range covers.
/// 4 gave the smallest mean |int8 − fp32| score difference over the 1,162 CLIVE photos with the
/// shipped Lite0 among 3, 4, 5 and 6 (1.28 MOS points; 1.57, 1.43, 1.46 for the others; on an
/// AVX-512 VNNI Xeon, session 11). A choice by agreement with fp32, not by any label.
pub const SPREAD: f64 = 4.0;

/// The largest magnitude of a weight (8 bits, symmetric).
const WEIGHT_MAX: f64 = 127.0;

/// oneDNN, at::QEngine's value: its int8 depthwise kernels are ~300x faster here than FBGEMM's
/// for the 5x5 and stride-2 ones of EfficientNet-Lite (measured, session 11).
const ENGINE_ONEDNN: i32 = 3;

const ERR_LEN: usize = 1024;

extern "C" {
    fn nq_conv2d_prepack(
        qweight: *const C_tensor,
        bias: *const C_tensor,
        stride: i64,
        padding: i64,
        groups: i64,
        err: *mut c_char,
        errlen: usize,
    ) -> *mut c_void;
    fn nq_packed_free(packed: *mut c_void);
    fn nq_conv2d(
        qx: *const C_tensor,
        packed: *const c_void,
        scale: f64,
        zero_point: i64,
        relu: i32,
        err: *mut c_char,
        errlen: usize,
    ) -> *mut C_tensor;
    fn nq_add(
        qa: *const C_tensor,
        qb: *const C_tensor,
        scale: f64,
        zero_point: i64,
        err: *mut c_char,
        errlen: usize,
    ) -> *mut C_tensor;
    fn nq_pad(
        qx: *const C_tensor,
        left: i64,
        right: i64,
        top: i64,
        bottom: i64,
        err: *mut c_char,
        errlen: usize,
    ) -> *mut C_tensor;
    fn nq_set_qengine(engine: i32, err: *mut c_char, errlen: usize) -> i32;
}

/// What went wrong in libtorch's quantised operators.
#[derive(Debug, thiserror::Error)]
#[error("int8 {what}: {message}")]
pub struct QuantError {
    what: &'static str,
    message: String,
}

/// The error the shim wrote into `err` (NUL-terminated).
fn shim_error(err: &[c_char; ERR_LEN], what: &'static str) -> QuantError {
    let message = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
    QuantError { what, message }
}

fn check<T>(ptr: *mut T, err: &[c_char; ERR_LEN], what: &'static str) -> Result<*mut T, QuantError> {
    match ptr.is_null() {
        true => Err(shim_error(err, what)),
        false => Ok(ptr),
    }
}

/// The affine map of a quint8 tensor: `real = scale · (q − zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    pub scale: f64,
    pub zero_point: i64,
    /// The highest integer used: 255, or 127 where the CPU's int8 dot products would saturate
    /// on 8-bit activations ([`activation_top`]).
    pub top: i64,
}

impl QParams {
    /// The map covering `[lo, hi]` (widened to hold 0, which padding and ReLU need exactly)
    /// with the integers `0..=top`.
    pub fn of_range(lo: f64, hi: f64, top: i64) -> Self {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = ((hi - lo) / top as f64).max(1e-8);
        let zero_point = (-lo / scale).round().clamp(0.0, top as f64) as i64;
        QParams { scale, zero_point, top }
    }

    /// The real range it represents.
    pub fn range(&self) -> (f64, f64) {
        let lo = -(self.zero_point as f64) * self.scale;
        (lo, lo + self.top as f64 * self.scale)
    }

    /// `y` held to the range, where the integers stop short of the type's 255 (a quantised
    /// convolution or sum saturates only at 255).
    fn hold(&self, y: Tensor) -> Tensor {
        match self.top {
            255 => y,
            _ => {
                let (lo, hi) = self.range();
                y.clamp(lo, hi)
            }
        }
    }
}

/// How many integer levels activations use on this CPU: 255 where oneDNN runs int8 on VNNI
/// (`vpdpbusd` accumulates u8·s8 products in 32 bits), 127 elsewhere. Without VNNI the kernels
/// sum pairs of u8·s8 products in 16 bits with saturation (`vpmaddubsw`): with 8-bit
/// activations and weights a pair can reach 2·255·127 > 32767, which measured on the shipped
/// Lite0 moved scores by up to 30 MOS points; 7-bit activations keep every pair below 2¹⁵
/// (2·127·127 = 32258). `ONEDNN_MAX_CPU_ISA` below VNNI counts as no VNNI (how an AVX2-only CPU
/// is emulated).
pub fn activation_top() -> i64 {
    #[cfg(target_arch = "x86_64")]
    let vnni = std::arch::is_x86_feature_detected!("avx512vnni") || std::arch::is_x86_feature_detected!("avxvnni");
    #[cfg(not(target_arch = "x86_64"))]
    let vnni = false;
    match vnni && onednn_isa_allows_vnni(crate::model::precision::onednn_isa_limit().as_deref()) {
        true => 255,
        false => 127,
    }
}

/// Whether a oneDNN ISA limit admits the VNNI instructions (no limit, `ALL`, or an ISA with
/// VNNI or a later extension in its name).
pub fn onednn_isa_allows_vnni(isa: Option<&str>) -> bool {
    crate::model::precision::onednn_isa_admits(isa, |isa| {
        ["VNNI", "BF16", "FP16", "AMX", "AVX10"].iter().any(|k| isa.contains(k))
    })
}

/// A convolution's packed int8 weights and its output's quantisation.
struct QConv {
    packed: *mut c_void,
    kernel: i64,
    stride: i64,
    /// Fused ReLU (with an output range that ends at 6: ReLU6).
    relu: bool,
    out: QParams,
}

// SAFETY: the packed weights are an IValue owned by this QConv alone, read (never written) by
// the forward of whichever thread holds the backbone; libtorch's packed parameters are
// immutable once packed.
unsafe impl Send for QConv {}

impl Drop for QConv {
    fn drop(&mut self) {
        unsafe { nq_packed_free(self.packed) }
    }
}

impl QConv {
    /// Packs `conv`'s weights (per channel, 8 bits) and fp32 bias, with its output quantised by
    /// `out`. Stride-1 convolutions pad inside the kernel (TF "SAME" is symmetric for odd
    /// kernels); stride-2 ones get their asymmetric padding in [`Self::forward`].
    fn pack(conv: &FusedConv, relu: bool, out: QParams) -> Result<Self, QuantError> {
        let (w, b) = conv.weights();
        let scales = (w.abs().amax([1, 2, 3], false).clamp_min(1e-12) / WEIGHT_MAX).to_kind(Kind::Double);
        let zeros = Tensor::zeros([w.size()[0]], (Kind::Int64, w.device()));
        let qw = w.quantize_per_channel(&scales, &zeros, 0, Kind::QInt8);
        let padding = if conv.stride() == 1 { conv.kernel() / 2 } else { 0 };
        let mut err = [0 as c_char; ERR_LEN];
        let packed = unsafe {
            nq_conv2d_prepack(qw.as_ptr(), b.as_ptr(), conv.stride(), padding, conv.groups(), err.as_mut_ptr(), ERR_LEN)
        };
        Ok(QConv {
            packed: check(packed, &err, "weight packing")?,
            kernel: conv.kernel(),
            stride: conv.stride(),
            relu,
            out,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, QuantError> {
        let x = match self.stride {
            1 => x.shallow_clone(),
            s => pad_same_quantized(x, self.kernel, s)?,
        };
        let mut err = [0 as c_char; ERR_LEN];
        let y = unsafe {
            nq_conv2d(x.as_ptr(), self.packed, self.out.scale, self.out.zero_point, self.relu as i32, err.as_mut_ptr(), ERR_LEN)
        };
        Ok(self.out.hold(unsafe { Tensor::from_ptr(check(y, &err, "convolution")?) }))
    }
}

/// TF-"SAME" padding (extra pixel at the end) of a quantised map, with its zero point (real 0),
/// in one pass (`nq_pad`).
fn pad_same_quantized(x: &Tensor, k: i64, s: i64) -> Result<Tensor, QuantError> {
    let Some([left, right, top, bottom]) = super::efficientnet_lite::same_padding(&x.size(), k, s) else {
        return Ok(x.shallow_clone());
    };
    let mut err = [0 as c_char; ERR_LEN];
    let y = unsafe { nq_pad(x.as_ptr(), left, right, top, bottom, err.as_mut_ptr(), ERR_LEN) };
    Ok(unsafe { Tensor::from_ptr(check(y, &err, "padding")?) })
}

fn add(a: &Tensor, b: &Tensor, out: QParams) -> Result<Tensor, QuantError> {
    let mut err = [0 as c_char; ERR_LEN];
    let y = unsafe { nq_add(a.as_ptr(), b.as_ptr(), out.scale, out.zero_point, err.as_mut_ptr(), ERR_LEN) };
    Ok(out.hold(unsafe { Tensor::from_ptr(check(y, &err, "residual sum")?) }))
}

/// Selects the quantised engine these kernels were measured with.
fn use_onednn() -> Result<(), QuantError> {
    let mut err = [0 as c_char; ERR_LEN];
    match unsafe { nq_set_qengine(ENGINE_ONEDNN, err.as_mut_ptr(), ERR_LEN) } {
        0 => Ok(()),
        _ => Err(shim_error(&err, "engine")),
    }
}

/// The range a convolution's BatchNorm gives its output, `[min β − k|γ|, max β + k|γ|]` (see
/// the module doc).
fn bn_range(conv: &FusedConv) -> (f64, f64) {
    let (mean, std) = conv.output_statistics();
    let lo = (mean - std * SPREAD).min().double_value(&[]);
    let hi = (mean + std * SPREAD).max().double_value(&[]);
    (lo, hi)
}

/// The range of a convolution followed by ReLU6: `[0, 6]`, or `[0, max β + k|γ|]` where its
/// BatchNorm says that is lower (the fused ReLU then clips there: a finer step for maps that
/// rarely come near 6).
fn relu6_out(conv: &FusedConv, top: i64) -> QParams {
    QParams::of_range(0.0, bn_range(conv).1.min(6.0), top)
}

/// One MBConv block in int8.
struct QBlock {
    expand: Option<QConv>,
    depthwise: QConv,
    project: QConv,
    /// The residual sum's quantisation, for blocks with a skip connection.
    sum: Option<QParams>,
}

impl QBlock {
    fn forward(&self, input: &Tensor) -> Result<Tensor, QuantError> {
        let x = match &self.expand {
            Some(c) => c.forward(input)?,
            None => input.shallow_clone(),
        };
        let x = self.project.forward(&self.depthwise.forward(&x)?)?;
        match &self.sum {
            Some(q) => add(&x, input, *q),
            None => Ok(x),
        }
    }
}

/// The parts of a folded EfficientNet-Lite, as [`Int8Lite::new`] takes them.
pub struct LiteParts<'a> {
    pub stem: &'a FusedConv,
    /// (expand, depthwise, project, skip) of each block.
    pub blocks: Vec<(Option<&'a FusedConv>, &'a FusedConv, &'a FusedConv, bool)>,
    pub head: &'a FusedConv,
    pub tap6: usize,
    /// The range of the normalised input.
    pub input: (f64, f64),
}

/// A folded EfficientNet-Lite in int8 (see the module doc).
pub struct Int8Lite {
    input: QParams,
    stem: QConv,
    blocks: Vec<QBlock>,
    head: QConv,
    tap6: usize,
}

impl Int8Lite {
    pub fn new(parts: LiteParts<'_>) -> Result<Self, QuantError> {
        if parts.stem.weights().0.device() != tch::Device::Cpu {
            return Err(QuantError {
                what: "device",
                message: "libtorch's quantised kernels run on the CPU only: use --device cpu, or --precision fp32 or bf16 on a GPU".into(),
            });
        }
        use_onednn()?;
        let top = activation_top();
        let input = QParams::of_range(parts.input.0, parts.input.1, top);
        let stem_out = relu6_out(parts.stem, top);
        let stem = QConv::pack(parts.stem, true, stem_out)?;
        let mut blocks = Vec::with_capacity(parts.blocks.len());
        // The range of the map entering the next block.
        let mut running = stem_out.range();
        for (expand, depthwise, project, skip) in parts.blocks {
            let (plo, phi) = bn_range(project);
            let projected = QParams::of_range(plo, phi, top);
            let sum = skip.then(|| QParams::of_range(plo + running.0, phi + running.1, top));
            blocks.push(QBlock {
                expand: expand.map(|c| QConv::pack(c, true, relu6_out(c, top))).transpose()?,
                depthwise: QConv::pack(depthwise, true, relu6_out(depthwise, top))?,
                project: QConv::pack(project, false, projected)?,
                sum,
            });
            tracing::debug!("int8 block: projection [{plo:.2}, {phi:.2}], sum {:?}", sum.map(|q| q.range()));
            running = sum.unwrap_or(projected).range();
        }
        Ok(Int8Lite {
            input,
            stem,
            blocks,
            head: QConv::pack(parts.head, true, relu6_out(parts.head, top))?,
            tap6: parts.tap6,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor), QuantError> {
        let q = x
            .to_kind(Kind::Float)
            .quantize_per_tensor(self.input.scale, self.input.zero_point, Kind::QUInt8);
        let mut x = self.stem.forward(&q)?;
        let mut level6 = None;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x)?;
            if i == self.tap6 {
                level6 = Some(x.dequantize());
            }
        }
        let m7 = self.head.forward(&x)?.dequantize();
        Ok((level6.expect("the level-6 tap is one of the blocks"), m7))
    }
}

impl FrozenBackbone for Int8Lite {
    /// A failure of libtorch's quantised kernels is a panic here (the trait has no error), which
    /// the scoring paths catch per batch and report per image ([`crate::infer::guarded`]).
    fn forward_two(&self, x: &Tensor) -> (Tensor, Tensor) {
        match self.forward(x) {
            Ok(maps) => maps,
            Err(e) => panic!("{e}"),
        }
    }
    fn convs_mut(&mut self) -> Vec<&mut FusedConv> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::{onednn_isa_allows_vnni as allows, QParams};

    #[test]
    fn a_range_holds_zero_exactly_and_its_ends() {
        for (lo, hi, top) in [(-2.1179, 2.64, 255), (-48.0, 52.0, 127), (0.0, 6.0, 255), (1.0, 3.0, 255)] {
            let q = QParams::of_range(lo, hi, top);
            let (a, b) = q.range();
            assert_eq!(a, -(q.zero_point as f64) * q.scale, "0 is an integer of the grid");
            assert!(a <= lo.min(0.0) + q.scale && b >= hi - q.scale, "[{lo}, {hi}] in [{a}, {b}]");
            assert!((0..=top).contains(&q.zero_point));
        }
        assert_eq!(QParams::of_range(0.0, 6.0, 255).range(), (0.0, 6.0), "ReLU6 ends at the top integer");
    }

    #[test]
    fn onednn_isa_limits_below_vnni_rule_out_8_bit_activations() {
        for isa in [None, Some("ALL"), Some("AVX2_VNNI"), Some("avx512_core_vnni"), Some("AVX512_CORE_BF16"), Some("AVX10_1_512")] {
            assert!(allows(isa), "{isa:?}");
        }
        for isa in ["AVX2", "AVX512_CORE", "SSE41"] {
            assert!(!allows(Some(isa)), "{isa}");
        }
    }
}
