//! Link settings for libtorch taken from the PyPI torch wheel.
//! - Two rpaths, in this order: `$ORIGIN/../lib/normiqa`, where `./run install` puts libtorch next
//!   to the installed binary (PREFIX/bin/normiqa → PREFIX/lib/normiqa), then libtorch's directory
//!   in this checkout, so `target/*/normiqa` runs without LD_LIBRARY_PATH (no `lib/normiqa` there).
//! - With the `cuda` feature: keep libtorch_cuda linked. rustc links with `--as-needed`, which drops
//!   libtorch_cuda.so because no symbol of it is referenced, and then CUDA is never initialised
//!   (tch-rs issue #980). Needs the full torch install (`./run setup-full`).
//! - `src/native/quantized.cpp`, the int8 operators' shim (`src/model/backbone/quantized.rs`),
//!   compiled against the same libtorch's headers (those beside its `lib/`), with its C++ ABI.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/native/quantized.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../lib/normiqa");
    let dir = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys reports libtorch's lib directory (DEP_TCH_LIBTORCH_LIB)");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    compile_quantized_shim(std::path::Path::new(&dir));
    if std::env::var("CARGO_FEATURE_CUDA").is_ok() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
    }
}

/// The int8 shim, with the flags torch-sys compiles its own C++ with.
fn compile_quantized_shim(lib_dir: &std::path::Path) {
    let include = lib_dir.parent().expect("libtorch's lib/ has a parent").join("include");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("src/native/quantized.cpp")
        .compile("normiqa_quantized");
    // After the shim on the link line: what it calls.
    println!("cargo:rustc-link-search=native={}", lib_dir.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}
