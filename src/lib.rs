//! normiqa: train, evaluate and use no-reference image quality models on libtorch (tch).
//!
//! The pure-Rust parts (metrics, full-reference metrics, datasets, synthetic distortions, the
//! `.pth` reader) live in the `normiqa-core` crate and are re-exported here. This crate adds what
//! needs libtorch: [`loss`], [`model`], the run's description ([`run`]), [`train`], [`infer`],
//! [`batch`], the HTTP scoring service ([`serve`]) and the command line ([`cli`]).
pub use normiqa_core::{data, fr, metrics, synth, weights};

pub mod atomic;
pub mod batch;
pub mod cli;
pub mod cpus;
pub mod distill;
pub mod experiment;
pub mod import;
pub mod infer;
pub mod inputs;
pub mod locate;
pub mod loss;
pub mod model;
pub mod output;
pub mod progress;
pub mod report;
pub mod run;
pub mod serve;
pub mod train;

/// jemalloc serves every allocation of the process, libtorch's tensors included (its malloc is
/// exported unprefixed), configured by [`malloc_conf`]. Feature `jemalloc` (default; off in the
/// Python extension, which lives in the interpreter's process and its malloc).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's configuration (read at its start; the `MALLOC_CONF` environment variable
/// overrides it): freed pages are kept for reuse and never handed back to the kernel. glibc
/// returns every block over 32 MB (a 500-px training batch's activation maps) to the kernel and
/// page-faults it in again at the next step, and jemalloc's default decay (10 s) does much the
/// same: the Lite0 train step went from 1.8 s (glibc) and 2.7 s (jemalloc defaults) to 0.9 s
/// (BENCHMARKS.md). The price: a process keeps the peak of its memory until it ends.
#[cfg(feature = "jemalloc")]
#[allow(non_upper_case_globals)]
#[no_mangle]
pub static malloc_conf: Option<&'static u8> = Some(&b"dirty_decay_ms:-1,muzzy_decay_ms:-1\0"[0]);

/// Hands the freed pages that [`malloc_conf`] keeps back to the kernel, between the runs of one
/// process (`normiqa run`, `distill` experiments): kept pages serve the next train step of the
/// same run, but each run's decoded images land in other pages, and a 30-run experiment grew
/// by ~0.6 GB per CLIVE run until the kernel killed it at 21 GB (measured, sessions 10 and 11;
/// with the pages purged after each run it stays near one run's peak). Returns whether the
/// pages were handed back (false without jemalloc).
pub fn release_free_memory() -> bool {
    #[cfg(feature = "jemalloc")]
    {
        // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena's unused dirty and muzzy pages.
        let name = b"arena.4096.purge\0";
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(name.as_ptr().cast(), std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut(), 0)
        };
        if rc != 0 {
            tracing::debug!("jemalloc purge failed (error {rc}); memory stays with the process");
        }
        rc == 0
    }
    #[cfg(not(feature = "jemalloc"))]
    false
}

#[cfg(all(test, feature = "jemalloc"))]
mod tests {
    #[test]
    fn the_pages_jemalloc_keeps_can_be_handed_back() {
        let v = vec![1u8; 64 << 20];
        drop(std::hint::black_box(v));
        assert!(super::release_free_memory(), "mallctl arena.4096.purge refused");
    }
}
