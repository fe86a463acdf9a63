//! Numeric precision of inference (`predict --precision`, `serve --precision`, `test --precision`).
//!
//! - `fp32`: every tensor in 32-bit floats, as the model was trained.
//! - `bf16`: the backbone's convolutions in bfloat16 (8 exponent bits, 8 significand bits:
//!   relative rounding error ≤ 2⁻⁹ ≈ 0.2% per value): their weights folded with BatchNorm in
//!   fp32 and then rounded once ([`super::backbone::fused::at_kind`]), their activations in
//!   bf16, the two feature maps returned in fp32. On CPUs with AVX-512 BF16 libtorch's
//!   oneDNN convolutions run on the bf16 dot-product instructions: `predict` scores about 1.6x
//!   as many photos per second as in fp32 here (BENCHMARKS.md). The heads, pooling (means,
//!   standard deviations) and the mapping stay in fp32. What this costs in accuracy is measured
//!   per model by `normiqa test --precision bf16` (RESULTS.md: the shipped model's CLIVE
//!   exp-0 test SROCC moves by less than the gate of 0.003) and checked on fixed images by
//!   `tests/precision.rs`.
//!
//! - `auto` (the default of `predict` and `serve`): the fastest precision that passes the
//!   accuracy gate on this CPU class, as measured (BENCHMARKS.md, one table per CPU class):
//!   bf16 on AMD CPUs with AVX-512 BF16 (Zen 4/5: bf16 scored ~1.6x the photos per second of
//!   fp32); fp32 on Intel CPUs with AVX-512 BF16 but no AMX (a Sapphire Rapids-family Xeon under
//!   KVM: bf16 0.82x fp32), on Intel CPUs with AMX (not measured by this project: fp32 until it
//!   is), on CPUs without AVX-512 BF16 (bf16 is emulated and slower), and on CUDA (bf16 on GPUs
//!   has not been measured by this project). [`auto_on_cpu`] is the rule. `test` defaults to
//!   fp32: an evaluation is reproducible across machines.
//!
//! - `int8`: the backbone's convolutions on libtorch's quantised kernels (oneDNN), for
//!   EfficientNet-Lite backbones, with ranges that need no calibration data
//!   ([`super::backbone::quantized`], through a C++ shim: tch does not bind the `quantized::`
//!   operators). The fastest precision on both CPU classes measured (BENCHMARKS.md), but its
//!   scores are ~1.3 MOS points from fp32's on average over CLIVE (bf16: 0.45), and the CLIVE
//!   exp-0 test SROCC moved by +0.0010 on AVX-512 VNNI and +0.0087 with oneDNN held to AVX2,
//!   swinging by more than the 0.003 gate with the range constant: that is not a gate passed
//!   with any margin, so `auto` does not pick int8 on any CPU; asked for, it runs.

use tch::{Device, Kind};

/// The precision of an inference forward.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// The fastest precision that passes the accuracy gate on this CPU class
    /// ([`auto_on_cpu`]): bf16 on AMD CPUs with AVX-512 BF16, else fp32.
    #[default]
    Auto,
    /// 32-bit floats (as trained).
    Fp32,
    /// bfloat16 weights and activations (fast on CPUs with AVX-512 BF16 or AMX, and on GPUs).
    Bf16,
    /// 8-bit integer convolutions (EfficientNet-Lite backbones, CPU; see
    /// [`super::backbone::quantized`]); never what `auto` picks.
    Int8,
}

impl Precision {
    /// What `auto` means on `device`; the others are themselves.
    pub fn resolve(self, device: Device) -> Precision {
        match (self, device) {
            (Precision::Auto, Device::Cpu) => auto_on_cpu(&cpu_vendor(), cpu_has_bf16()),
            (Precision::Auto, _) => Precision::Fp32,
            (p, _) => p,
        }
    }

    /// The tensor kind of weights and activations (`auto` must be resolved first: fp32).
    pub fn kind(self) -> Kind {
        match self {
            Precision::Auto | Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
            Precision::Int8 => Kind::QUInt8,
        }
    }

    /// The name as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether this CPU has the AVX-512 BF16 dot-product instructions that make bf16 fast, and
/// oneDNN may use them: `ONEDNN_MAX_CPU_ISA` (or its older name `DNNL_MAX_CPU_ISA`) below
/// `AVX512_CORE_BF16` keeps libtorch's convolutions off them (that is also how the test suite
/// emulates an AVX2-only CPU on an AVX-512 one), and then bf16 is emulated and slow.
pub fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    let hardware = std::arch::is_x86_feature_detected!("avx512bf16");
    #[cfg(not(target_arch = "x86_64"))]
    let hardware = false;
    hardware && onednn_isa_allows_bf16(onednn_isa_limit().as_deref())
}

/// oneDNN's ISA limit of this process: `ONEDNN_MAX_CPU_ISA`, or its older name
/// `DNNL_MAX_CPU_ISA`.
pub fn onednn_isa_limit() -> Option<String> {
    std::env::var("ONEDNN_MAX_CPU_ISA").or_else(|_| std::env::var("DNNL_MAX_CPU_ISA")).ok()
}

/// Whether the ISA limit `isa` admits what `admits` says of its upper-case name; no limit, an
/// empty one and `ALL` admit everything.
pub fn onednn_isa_admits(isa: Option<&str>, admits: impl Fn(&str) -> bool) -> bool {
    let Some(isa) = isa.map(|s| s.trim().to_ascii_uppercase()) else {
        return true;
    };
    isa.is_empty() || isa == "ALL" || admits(&isa)
}

/// What `auto` is on a CPU of `vendor` (CPUID's vendor string) that has, or lacks, usable
/// AVX-512 BF16 instructions ([`cpu_has_bf16`]): bf16 where it was measured faster than fp32
/// within the accuracy gate (AMD Zen 4/5), fp32 everywhere else (see the module doc).
pub fn auto_on_cpu(vendor: &str, bf16: bool) -> Precision {
    match (vendor, bf16) {
        ("AuthenticAMD", true) => Precision::Bf16,
        _ => Precision::Fp32,
    }
}

/// CPUID's vendor string (`GenuineIntel`, `AuthenticAMD`, ...); empty where there is none.
pub fn cpu_vendor() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        // (leaf 0 exists on every x86-64 CPU)
        let r = std::arch::x86_64::__cpuid(0);
        let bytes: Vec<u8> = [r.ebx, r.edx, r.ecx].iter().flat_map(|w| w.to_le_bytes()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
    #[cfg(not(target_arch = "x86_64"))]
    String::new()
}

/// Whether a oneDNN ISA limit (`ONEDNN_MAX_CPU_ISA`'s value) admits the AVX-512 BF16
/// instructions: no limit, `ALL`, or an ISA at or above `AVX512_CORE_BF16` (those with BF16,
/// FP16 or AMX in the name, and the AVX10 ones).
pub fn onednn_isa_allows_bf16(isa: Option<&str>) -> bool {
    onednn_isa_admits(isa, |isa| {
        (isa.starts_with("AVX512") && ["BF16", "FP16", "AMX"].iter().any(|k| isa.contains(k)))
            || isa.starts_with("AVX10")
    })
}

#[cfg(test)]
mod tests {
    use super::onednn_isa_allows_bf16 as allows;
    use super::{auto_on_cpu, cpu_vendor, Precision};

    #[test]
    fn auto_is_bf16_only_where_it_was_measured_faster() {
        assert_eq!(auto_on_cpu("AuthenticAMD", true), Precision::Bf16);
        assert_eq!(auto_on_cpu("AuthenticAMD", false), Precision::Fp32);
        assert_eq!(auto_on_cpu("GenuineIntel", true), Precision::Fp32);
        assert_eq!(auto_on_cpu("GenuineIntel", false), Precision::Fp32);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_cpu_vendor_is_cpuid_s_twelve_letters() {
        let v = cpu_vendor();
        assert_eq!(v.len(), 12, "{v:?}");
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        if let Some(line) = cpuinfo.lines().find(|l| l.starts_with("vendor_id")) {
            assert!(line.ends_with(&v), "{line} vs {v}");
        }
    }

    #[test]
    fn onednn_isa_limits_below_avx512_bf16_rule_out_bf16() {
        for isa in [None, Some("ALL"), Some("avx512_core_bf16"), Some("AVX512_CORE_AMX"), Some("AVX10_1_512")] {
            assert!(allows(isa), "{isa:?}");
        }
        for isa in ["AVX2", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI", "SSE41"] {
            assert!(!allows(Some(isa)), "{isa}");
        }
    }
}
