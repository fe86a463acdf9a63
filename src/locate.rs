//! Finding the project's files (weights, shipped model, bundled sample, shared data) from the
//! working directory or from the executable's location (`target/release/normiqa` → the repository).

use std::path::{Path, PathBuf};

/// The first of `./rel` and `<ancestor of the executable>/rel` (4 levels up) for which `exists`
/// holds.
pub fn find(rel: &Path, exists: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let mut candidates = vec![rel.to_path_buf()];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).take(4).map(|a| a.join(rel)));
    }
    candidates.into_iter().find(|p| exists(p))
}
