//! Link settings for libtorch taken from the PyPI torch wheel.
//! - Two rpaths, in this order: `$ORIGIN/../lib/normiqa`, where `./run install` puts libtorch next
//!   to the installed binary (PREFIX/bin/normiqa → PREFIX/lib/normiqa), then libtorch's directory
//!   in this checkout, so `target/*/normiqa` runs without LD_LIBRARY_PATH (no `lib/normiqa` there).
//! - With the `cuda` feature: keep libtorch_cuda linked. rustc links with `--as-needed`, which drops
//!   libtorch_cuda.so because no symbol of it is referenced, and then CUDA is never initialised
//!   (tch-rs issue #980). Needs the full torch install (`./run setup-full`).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../lib/normiqa");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    if std::env::var("CARGO_FEATURE_CUDA").is_ok() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
    }
}
