//! RESULTS.md's "The papers' tables beside ours" is generated, never typed: it is exactly what
//! `bench/paper_tables.py` makes of `../shared/reference/*.csv` and the finished runs' summaries
//! kept in `reference/results/`, and every number of the papers' tables appears in it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The papers' CSVs, or None (with a NOTICE) where `../shared/reference` is not beside the checkout.
fn reference() -> Option<PathBuf> {
    let r = root().join("..").join("shared").join("reference");
    if r.join("nin-paper-tables.csv").exists() && r.join("mrkd-paper-tables.csv").exists() {
        Some(r)
    } else {
        eprintln!("NOTICE: paper tables: skipped: ../shared/reference/*.csv is not beside the checkout");
        None
    }
}

fn python() -> Option<&'static str> {
    let ok = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("NOTICE: paper tables: skipped: no python3 on PATH");
    }
    ok.then_some("python3")
}

fn section() -> String {
    let text = std::fs::read_to_string(root().join("RESULTS.md")).unwrap();
    let begin = text.find("<!-- paper-tables: begin").expect("RESULTS.md has the paper-tables section");
    let end = text.find("<!-- paper-tables: end -->").expect("the section's end marker");
    text[begin..end].to_string()
}

#[test]
fn the_results_section_is_what_the_script_generates_from_the_kept_files() {
    let (Some(_), Some(py)) = (reference(), python()) else { return };
    let out = Command::new(py)
        .arg(root().join("bench/paper_tables.py"))
        .arg("--check")
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every value of both papers' tables is in the section (rows of Table 1 of MRKD hold both SRCC
/// and PLCC; the Norm-in-Norm rows one value, "failed/0.069" included).
#[test]
fn every_number_of_the_papers_tables_is_in_the_section() {
    let Some(r) = reference() else { return };
    let s = section();
    let mut n = 0;
    for (file, cols) in [("nin-paper-tables.csv", &["value"][..]), ("mrkd-paper-tables.csv", &["srcc", "plcc"][..])] {
        let mut rd = csv::Reader::from_path(Path::new(&r).join(file)).unwrap();
        let header = rd.headers().unwrap().clone();
        for rec in rd.records() {
            let rec = rec.unwrap();
            for c in cols {
                let i = header.iter().position(|h| h == *c).unwrap();
                let v = rec[i].trim();
                assert!(s.contains(&format!("| {v} |")), "{file}: {v} (row {:?}) is not in RESULTS.md's section", rec);
                n += 1;
            }
        }
    }
    assert!(n > 100, "only {n} values read");
}
