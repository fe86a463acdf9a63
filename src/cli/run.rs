//! `normiqa run`: runs an experiment file (see [`crate::experiment::spec`] for the format).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::experiment::{self, Experiment, RunOptions};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The experiment file (TOML: a base config.toml plus [sweep] tables).
    pub experiment: PathBuf,
    /// List the runs and their state (pending, interrupted, failed, finished, stale = another
    /// configuration); run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run only these runs (indices from --dry-run; repeat or separate with commas).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<usize>,
    /// Where experiment directories go: <out>/<experiment name>/<run name>/ (`--runs` is the
    /// former name).
    #[arg(long = "out", alias = "runs", value_name = "DIR", default_value = "runs")]
    pub runs: PathBuf,
    /// Override every run's device (cpu, cuda, cuda:N, auto).
    #[arg(long)]
    pub device: Option<String>,
    /// Replace the folders of runs whose configuration no longer matches the file (finished or
    /// not); without it such a folder stops the experiment. Finished runs of the same
    /// configuration are always skipped. (`--force` is the former name.)
    #[arg(long, alias = "force")]
    pub overwrite: bool,
    /// Also draw the figures and tables (as `normiqa report`) when done.
    #[arg(long)]
    pub report: bool,
}

pub fn run(args: RunArgs) -> Result<()> {
    let exp = Experiment::load(&args.experiment)?;
    let opts = RunOptions {
        runs_root: args.runs.clone(),
        dry_run: args.dry_run,
        only: (!args.only.is_empty()).then(|| args.only.clone()),
        device: args.device.clone(),
        overwrite: args.overwrite,
    };
    let dir = experiment::run(&exp, &opts)?;
    if args.report && !args.dry_run {
        let files = super::report::report(&dir, &super::report::ReportOptions::default())?;
        crate::outln!(
            "report: {} files in {}",
            files.len(),
            dir.join("report").display()
        )?;
    }
    Ok(())
}
