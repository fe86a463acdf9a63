//! `normiqa pretrain-scnn`: DBCNN's S-CNN, pre-trained to classify the distortion type and level
//! of a synthetic dataset (`normiqa synth`'s output); DBCNN loads the result with
//! `--scnn-weights RUN/scnn.safetensors`. See [`crate::train::scnn_pretrain`].

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::args::DataArgs;
use crate::train::scnn_pretrain::{self, ScnnConfig, SCNN_FILE};

#[derive(Args, Debug)]
pub struct PretrainScnnArgs {
    /// The synthetic dataset: `--dataset csv --labels DIR/labels.csv --images DIR --mos-column
    /// score` of a `normiqa synth` folder, split by reference (`--split by-reference`).
    #[command(flatten)]
    pub data: DataArgs,
    /// Run folder (written atomically, locked while written; an interrupted run resumes).
    #[arg(long, default_value = "runs/scnn")]
    pub out: PathBuf,
    /// Replace a run of another configuration in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// Training epochs (the validation accuracy picks the epoch kept).
    #[arg(short = 'e', long, default_value_t = 8)]
    pub epochs: usize,
    /// Images per batch.
    #[arg(short = 'b', long, default_value_t = 32)]
    pub batch_size: usize,
    /// Adam's learning rate (constant).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Side of the random square training crops (the authors: 224; smaller is faster on a CPU).
    #[arg(long, default_value_t = 224)]
    pub crop: u32,
    /// Seed of the split, initialisation, batch order and crops.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Device: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = crate::run::config::defaults::DEVICE)]
    pub device: String,
}

pub fn run(args: PretrainScnnArgs) -> Result<()> {
    if !args.data.given() {
        anyhow::bail!("pretrain-scnn needs a synthetic dataset: --dataset csv --labels DIR/labels.csv --images DIR --mos-column score --split by-reference (DIR made by `normiqa synth`)");
    }
    let cfg = ScnnConfig {
        data: args.data.to_config()?,
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        crop: args.crop,
        seed: args.seed,
        device: args.device.clone(),
    };
    let s = scnn_pretrain::pretrain(&cfg, &args.out, args.overwrite)?;
    println!(
        "S-CNN: validation accuracy {:.3} over {} classes (chance {:.3}), best epoch {} of {}",
        s.val_accuracy,
        s.classes.len(),
        s.chance,
        s.best_epoch,
        s.epochs_done
    );
    println!(
        "DBCNN: normiqa train --model dbcnn --scnn-weights {} ...",
        args.out.join(SCNN_FILE).display()
    );
    Ok(())
}
