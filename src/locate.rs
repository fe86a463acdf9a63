//! Finding the project's files (weights, shipped model, bundled sample, shared data) from the
//! working directory, from the executable's location (`target/release/normiqa` → the repository),
//! or, for an installed binary, from `PREFIX/share/normiqa` (`PREFIX/bin/normiqa` → `./run install`).

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

/// `<folder of the executable>/../share/normiqa/rel` if `exists` holds for it: the data that
/// `./run install` puts beside an installed binary. The executable's path is its real one (links
/// to it resolved), so a link to the binary elsewhere on the PATH finds the same data.
pub fn installed(rel: &Path, exists: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let share = exe.parent()?.parent()?.join("share/normiqa");
    Some(share.join(rel)).filter(|p| exists(p))
}
