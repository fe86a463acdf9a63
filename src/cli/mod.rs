//! One file per subcommand; each defines its clap `Args` and a `run` function.

pub mod args;
pub mod decode;
pub mod demo;
pub mod distill;
pub mod fr;
pub mod metrics;
pub mod predict;
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
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train LinearityIQA (options and defaults of the reference main.py).
    Train(train::TrainArgs),
    /// Evaluate a trained model on a dataset or split.
    Test(test::TestArgs),
    /// Score images (files or folders) with a trained model.
    Predict(predict::PredictArgs),
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
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(a) => train::run(a),
        Command::Test(a) => test::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Metrics(a) => metrics::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Decode(a) => decode::run(a),
        Command::Distill(a) => distill::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Fr(a) => fr::run(a),
        Command::Run(a) => run::run(a),
        Command::Report(a) => report::run(a),
        Command::Serve(a) => serve::run(a),
    }
}
