//! What commands write: never over one of their own inputs ([`refuse_file_over_inputs`],
//! [`refuse_dir_over_inputs`]), and score files that are written atomically and can be resumed
//! ([`resumable`]).

pub mod record;
pub mod resumable;
pub mod stdout;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::inputs::FileId;

/// An output option names a file or folder that is also an input.
#[derive(Debug, thiserror::Error)]
#[error("{option} {output} would write over the {role} {input}: choose another output")]
pub struct WouldOverwrite {
    pub option: String,
    pub output: String,
    pub role: String,
    pub input: String,
}

impl WouldOverwrite {
    fn new(option: &str, output: &Path, role: &str, input: &Path) -> Self {
        WouldOverwrite {
            option: option.to_string(),
            output: output.display().to_string(),
            role: role.to_string(),
            input: input.display().to_string(),
        }
    }
}

/// Refuses when the file `output` (of option `option`) is one of `inputs` (role, path): the same
/// file under any name (links, hard links, `./a` and `a`).
pub fn refuse_file_over_inputs<'a>(
    option: &str,
    output: &Path,
    inputs: impl IntoIterator<Item = (&'a str, &'a Path)>,
) -> Result<(), WouldOverwrite> {
    let Ok(out) = FileId::of(output) else {
        return Ok(()); // not there yet: it cannot be an input
    };
    for (role, input) in inputs {
        if FileId::of(input).is_ok_and(|id| id == out) {
            return Err(WouldOverwrite::new(option, output, role, input));
        }
    }
    Ok(())
}

/// Refuses when the file `output` is one of the files whose identities are `ids` (role `role`).
pub fn refuse_file_over_ids(
    option: &str,
    output: &Path,
    role: &str,
    ids: &HashSet<FileId>,
) -> Result<(), WouldOverwrite> {
    match FileId::of(output) {
        Ok(out) if ids.contains(&out) => Err(WouldOverwrite::new(option, output, role, output)),
        _ => Ok(()),
    }
}

/// Refuses when the folder `output` is, or contains, one of `inputs`: the files a command writes
/// there could replace them.
pub fn refuse_dir_over_inputs<'a>(
    option: &str,
    output: &Path,
    inputs: impl IntoIterator<Item = (&'a str, &'a Path)>,
) -> Result<(), WouldOverwrite> {
    let Ok(out) = std::fs::canonicalize(output) else {
        return Ok(());
    };
    for (role, input) in inputs {
        let inside = std::fs::canonicalize(input).is_ok_and(|p: PathBuf| p.starts_with(&out));
        if inside {
            return Err(WouldOverwrite::new(option, output, role, input));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_under_another_name_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("labels.csv");
        std::fs::write(&a, "image,mos\n").unwrap();
        let dotted = tmp.path().join(".").join("labels.csv");
        let e = refuse_file_over_inputs("--predictions", &dotted, [("labels file", a.as_path())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--predictions") && e.contains("labels file"), "{e}");
        #[cfg(unix)]
        {
            let link = tmp.path().join("link.csv");
            std::os::unix::fs::symlink(&a, &link).unwrap();
            assert!(refuse_file_over_inputs("-o", &link, [("labels", a.as_path())]).is_err());
            let hard = tmp.path().join("hard.csv");
            std::fs::hard_link(&a, &hard).unwrap();
            assert!(refuse_file_over_inputs("-o", &hard, [("labels", a.as_path())]).is_err());
        }
        let other = tmp.path().join("other.csv");
        assert!(refuse_file_over_inputs("-o", &other, [("labels", a.as_path())]).is_ok());
        std::fs::write(&other, "x").unwrap();
        assert!(refuse_file_over_inputs("-o", &other, [("labels", a.as_path())]).is_ok());
    }

    #[test]
    fn a_folder_holding_an_input_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let refs = tmp.path().join("refs");
        std::fs::create_dir_all(&refs).unwrap();
        let e = refuse_dir_over_inputs("--out", &refs, [("reference folder", refs.as_path())]);
        assert!(e.is_err());
        assert!(refuse_dir_over_inputs("--out", tmp.path(), [("refs", refs.as_path())]).is_err());
        let out = tmp.path().join("out");
        assert!(refuse_dir_over_inputs("--out", &out, [("refs", refs.as_path())]).is_ok());
        std::fs::create_dir_all(&out).unwrap();
        assert!(refuse_dir_over_inputs("--out", &out, [("refs", refs.as_path())]).is_ok());
    }
}
