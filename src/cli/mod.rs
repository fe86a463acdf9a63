//! One file per subcommand; each defines its clap `Args` and a `run` function.

pub mod args;
pub mod decode;
pub mod demo;
pub mod distill;
pub mod fr;
pub mod import_checkpoint;
pub mod merge;
pub mod metrics;
pub mod predict;
pub mod pretrain_scnn;
pub mod reference_spelling;
pub mod report;
pub mod run;
pub mod serve;
pub mod synth;
pub mod test;
pub mod train;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "normiqa",
    version,
    about = "Train, evaluate and use no-reference image quality models (LinearityIQA, Norm-in-Norm loss)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// CPU threads to use in all (libtorch's intra-op threads, shared out among predict's and
    /// serve's workers). Default: the CPUs this process is given: the smallest of the cores
    /// online, the CPU affinity mask, the cgroup CPU quota and SLURM_CPUS_PER_TASK.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train LinearityIQA (options and defaults of the reference main.py).
    Train(train::TrainArgs),
    /// Evaluate a trained model on a dataset or split.
    Test(test::TestArgs),
    /// Score images (files or folders) with a trained model.
    #[command(after_help = predict::SCORE_HELP)]
    Predict(predict::PredictArgs),
    /// One file of the shards of a job (`predict --shard I/N -o DIR/...`): every shard there
    /// and finished, the same model and options in each, each image once, sorted.
    Merge(merge::MergeArgs),
    /// SROCC, PLCC, KROCC, RMSE of any CSV of predictions and MOS.
    Metrics(metrics::MetricsArgs),
    /// Decode a dataset once and write its raw pixels (for other tools).
    Decode(decode::DecodeArgs),
    /// A first tour: train on a bundled CLIVE sample with Norm-in-Norm and MSE, score images.
    Demo(demo::DemoArgs),
    /// Multi-Rate Knowledge Distillation (MRKD): baseline / URKD / MRKD over seeds, tables, plots.
    Distill(distill::DistillArgs),
    /// Generate a KADID-style synthetic dataset (25 distortions x 5 levels, FR-metric labels).
    Synth(synth::SynthArgs),
    /// Full-reference metrics (PSNR, SSIM, MS-SSIM, GMSD) of images or folders against references.
    Fr(fr::FrArgs),
    /// Run an experiment file (a base config plus sweeps): every combination, skipping finished ones.
    Run(run::RunArgs),
    /// Figures (PNG) and tables (markdown) of a run or experiment directory.
    Report(report::ReportArgs),
    /// HTTP scoring service: POST /score, a web page to drop photos on, micro-batching.
    Serve(serve::ServeArgs),
    /// Turn a checkpoint of other code (the authors' LinearityIQA) into a normiqa run folder.
    ImportCheckpoint(import_checkpoint::ImportArgs),
    /// Pre-train DBCNN's S-CNN to classify the distortion type and level of a synthetic dataset.
    PretrainScnn(pretrain_scnn::PretrainScnnArgs),
}

/// Whether log lines on stderr get ANSI colours: only on a terminal, and never when `NO_COLOR`
/// is set to a non-empty value (<https://no-color.org>).
pub fn use_color(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.map_or(true, |v| v.is_empty())
}

/// The error as printed: each cause after the context before it (`{:#}`), except a cause whose
/// text the message already holds (an error that prints its OS error and also returns it as
/// its source would show "Permission denied (os error 13)" twice).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Whether an error comes from writing to a closed pipe (the reader exited, as `head` does).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let io = c.downcast_ref::<std::io::Error>().or_else(|| {
            c.downcast_ref::<csv::Error>().and_then(|e| match e.kind() {
                csv::ErrorKind::Io(io) => Some(io),
                _ => None,
            })
        });
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let budget = crate::cpus::init(cli.threads.map(|n| n as usize));
    tracing::debug!("threads: {budget}");
    match cli.command {
        Command::Train(a) => train::run(a),
        Command::Test(a) => test::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Metrics(a) => metrics::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Decode(a) => decode::run(a),
        Command::PretrainScnn(a) => pretrain_scnn::run(a),
        Command::Distill(a) => distill::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Fr(a) => fr::run(a),
        Command::Run(a) => run::run(a),
        Command::Report(a) => report::run(a),
        Command::Serve(a) => serve::run(a),
        Command::ImportCheckpoint(a) => import_checkpoint::run(a),
    }
}
