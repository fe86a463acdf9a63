//! `normiqa decode`: decodes a dataset once (with its resize rules) and writes the raw pixels,
//! `DIR/pixels.u8` (N×H×W×3, uint8) and `DIR/pixels.json` (`names`, `shape`), so that another
//! tool (the PyTorch reference in `reference/`) can run on exactly the pixels normiqa sees.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::args::DataArgs;
use crate::run;

#[derive(Args, Debug)]
pub struct DecodeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: DecodeArgs) -> Result<()> {
    let cfg = args.data.to_config()?;
    let dataset = run::data::load_dataset(&cfg.dataset, &cfg.loading)?;
    let inputs = super::args::dataset_input_ids(&cfg.dataset, &dataset);
    for f in ["pixels.u8", "pixels.json"] {
        crate::output::refuse_file_over_ids("--out", &args.out.join(f), "dataset file", &inputs)?;
    }
    let all = normiqa_core::data::split::Split::all_test(dataset.len());
    let (images, secs) = run::data::decode_used(&dataset, &all, &cfg)?;
    let (w, h) = images[0].dimensions();
    if let Some((i, im)) = images
        .iter()
        .enumerate()
        .find(|(_, im)| im.dimensions() != (w, h))
    {
        bail!(
            "{} is {}x{}, not {w}x{h}: one raw array needs one image size (use --resize H W)",
            dataset.samples[i].name,
            im.width(),
            im.height()
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(args.out.join("pixels.u8"))?);
    for im in &images {
        f.write_all(im.as_raw())?;
    }
    f.flush()?;
    let names: Vec<&str> = dataset.samples.iter().map(|s| s.name.as_str()).collect();
    let meta = serde_json::json!({"names": names, "shape": [images.len(), h, w, 3], "decoder": "normiqa", "decode_seconds": secs});
    std::fs::write(args.out.join("pixels.json"), serde_json::to_string(&meta)?)?;
    crate::outln!(
        "{} images ({}x{}) decoded in {:.1} s -> {}",
        images.len(),
        w,
        h,
        secs,
        args.out.display()
    )?;
    Ok(())
}
