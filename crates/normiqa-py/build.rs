//! The extension's run path: `$ORIGIN/../torch/lib`, libtorch's folder of the torch wheel in the
//! same site-packages as `normiqa/` (the package also preloads the libraries wherever torch is:
//! python/normiqa/_libtorch.py).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-cdylib=-Wl,-rpath,$ORIGIN/../torch/lib");
}
