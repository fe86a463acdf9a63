//! `normiqa import-checkpoint`: a model trained by other code → a normiqa run folder that
//! `predict`, `test` and `serve` use like any other (see [`crate::import`]).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::args::{backbone_parser, named, DataArgs, POOL_NAMES};
use crate::model::{BackboneName, ModelConfig, Pool};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A checkpoint of the authors' LinearityIQA code (github.com/lidq92/LinearityIQA main.py):
    /// {'model': IQAModel state dict, 'k': [...], 'b': [...]}.
    Linearityiqa,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Which code wrote the checkpoint.
    #[arg(long, value_enum)]
    pub from: Source,
    /// The checkpoint file (.pth, e.g. the authors' p1q2.pth).
    pub checkpoint: PathBuf,
    /// Backbone the checkpoint was trained with (the reference's --architecture; its default).
    #[arg(long, alias = "architecture", default_value = "resnext101_32x8d", value_parser = backbone_parser())]
    pub arch: BackboneName,
    /// Pooling the checkpoint was trained with (the reference's --pool).
    #[arg(long, default_value = "avg", value_parser = named::<Pool>(POOL_NAMES))]
    pub pool: Pool,
    /// Pyramid levels of stage 6's spatial pooling the checkpoint was trained with (the
    /// reference's --P6).
    #[arg(long = "p6", alias = "P6", default_value_t = 1)]
    pub p6: i64,
    /// Pyramid levels of stage 7's spatial pooling (the reference's --P7).
    #[arg(long = "p7", alias = "P7", default_value_t = 1)]
    pub p7: i64,
    /// The checkpoint has BatchNorm1d(1) at the end of each head (the reference's --use_bn_end).
    #[arg(long, alias = "use_bn_end")]
    pub use_bn_end: bool,
    /// The run folder to write (must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// The dataset the model was trained on, recorded in config.toml so that `normiqa test
    /// --model DIR` evaluates on its test split and `predict` names the scores' scale (default:
    /// CLIVE at ../shared/data/clive for `test`, with the scale recorded as not named; the
    /// authors' p1q2.pth was trained on KonIQ-10k with --resize 498 664).
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn run(args: ImportArgs) -> Result<()> {
    let model = ModelConfig {
        backbone: args.arch,
        pool: args.pool,
        p6: args.p6,
        p7: args.p7,
        use_bn_end: args.use_bn_end,
        ..ModelConfig::default()
    };
    let data = args.data.to_config()?;
    let record = match args.from {
        Source::Linearityiqa => {
            crate::import::import_linearityiqa(&args.checkpoint, model, (data, args.data.given()), &args.out)
        }
    }
    .with_context(|| format!("importing {}", args.checkpoint.display()))?;
    crate::outln!(
        "imported {} tensors from {} into {}",
        record.tensors,
        args.checkpoint.display(),
        args.out.display()
    )?;
    crate::outln!(
        "fused head: score = {} * y + {} (the reference's k[0], b[0]); try: normiqa predict --model {} IMAGE",
        record.reference_k[0],
        record.reference_b[0],
        args.out.display()
    )?;
    Ok(())
}
