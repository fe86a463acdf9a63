//! Batches whose MOS are all equal. With few MOS levels (5-level integer MOS, say) and small
//! batches (`-b 2`) some batches hold a single MOS value. The losses that normalise the MOS of a
//! batch (Norm-in-Norm and the reference's other normalised losses) then centre it to zeros; the
//! reference divides by the norm plus ε ([`crate::loss::EPS`]), so the batch's normalised MOS is 0
//! and training goes on, and so does normiqa. The trainer counts such batches, logs each one
//! (`constant_mos_batch` in `log.jsonl`) and writes the count into `run.json`
//! (`constant_mos_batches`). Only a training split whose MOS are all equal is refused: no batch
//! of it could teach anything.

use normiqa_core::data::Dataset;
use serde::Serialize;

use crate::loss::LossConfig;

/// A training split whose MOS are all equal, for a loss that normalises the MOS.
#[derive(Debug, thiserror::Error)]
#[error("all {n} training images of {dataset} have the same MOS ({value}): the {loss} loss normalises the MOS of each batch and can learn nothing from them; check the MOS column of the labels, or train with --loss mse")]
pub struct ConstantSplit {
    pub n: usize,
    pub dataset: String,
    pub value: f64,
    pub loss: &'static str,
}

/// Refuses a training split whose MOS are all equal when `loss` normalises the MOS.
pub fn check_split(
    dataset: &Dataset,
    train: &[usize],
    loss: &LossConfig,
) -> Result<(), ConstantSplit> {
    let mos: Vec<f64> = train.iter().map(|&i| dataset.samples[i].mos).collect();
    if loss.kind.normalises_targets() && mos.len() > 1 && all_equal(&mos) {
        return Err(ConstantSplit {
            n: mos.len(),
            dataset: dataset.name.clone(),
            value: mos[0],
            loss: loss.kind.name(),
        });
    }
    Ok(())
}

fn all_equal(v: &[f64]) -> bool {
    v.windows(2).all(|w| w[0] == w[1])
}

/// The count of batches with all-equal MOS in a run (carried over a resume).
#[derive(Debug, Clone)]
pub struct ConstantBatches {
    normalises: bool,
    pub count: usize,
}

impl ConstantBatches {
    /// A counter for `loss` that starts at `count` (the count of a resumed run so far).
    pub fn new(loss: &LossConfig, count: usize) -> Self {
        ConstantBatches {
            normalises: loss.kind.normalises_targets(),
            count,
        }
    }

    /// True, and counted, when `mos` (one batch, two or more values) is constant and the loss
    /// normalises the MOS.
    pub fn observe(&mut self, mos: &[f64]) -> bool {
        let hit = self.normalises && mos.len() > 1 && all_equal(mos);
        self.count += usize::from(hit);
        hit
    }
}

/// The `constant_mos_batch` log event.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    /// 1-based, as the other events.
    pub epoch: usize,
    pub batch: usize,
    pub images: Vec<&'a str>,
    pub mos: f64,
    /// Such batches so far in the run, this one included.
    pub count: usize,
}

/// The log event of a constant batch `idx` (0-based `epoch`, `batch`).
pub fn event<'a>(
    dataset: &'a Dataset,
    idx: &[usize],
    epoch: usize,
    batch: usize,
    counter: &ConstantBatches,
) -> Event<'a> {
    Event {
        epoch: epoch + 1,
        batch: batch + 1,
        images: idx
            .iter()
            .map(|&i| dataset.samples[i].name.as_str())
            .collect(),
        mos: dataset.samples[idx[0]].mos,
        count: counter.count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::LossKind;

    #[test]
    fn only_constant_batches_of_normalising_losses_count() {
        let nin = LossConfig::default();
        let mut c = ConstantBatches::new(&nin, 3);
        assert!(c.observe(&[4.0, 4.0]));
        assert!(!c.observe(&[4.0, 5.0]));
        assert!(!c.observe(&[4.0]), "a batch of one is not counted");
        assert_eq!(c.count, 4);
        let mse = LossConfig {
            kind: LossKind::Mse,
            ..Default::default()
        };
        let mut c = ConstantBatches::new(&mse, 0);
        assert!(!c.observe(&[4.0, 4.0]));
        assert_eq!(c.count, 0);
    }
}
