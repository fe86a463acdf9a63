//! Spatial pooling of a feature map into a vector: the reference's SPSP (`IQAmodel.py`): for each
//! pyramid level p = 1..P the map is pooled with a window of ⌊H/p⌋ × ⌊W/p⌋ (stride = window).

use tch::Tensor;

pub use crate::run::model::{Pool, UnknownPool};

/// Length of the pooled vector for `c` channels and a pyramid of `levels` levels.
pub fn pooled_len(c: i64, pool: Pool, levels: i64) -> i64 {
    c * pool.width() * (1..=levels).map(|p| p * p).sum::<i64>()
}

/// SPSP(x, P, method) of the reference. For P = 1 and avg pooling this is global average pooling.
pub fn spsp(x: &Tensor, levels: i64, pool: Pool) -> Tensor {
    let b = x.size()[0];
    let (h, w) = (x.size()[2], x.size()[3]);
    let mut parts = Vec::with_capacity(levels as usize);
    for p in 1..=levels {
        let k = [h / p, w / p];
        let avg = |t: &Tensor| {
            if p == 1 {
                t.mean_dim(&[2i64, 3][..], true, t.kind())
            } else {
                t.avg_pool2d(k, k, [0, 0], false, true, None::<i64>)
            }
        };
        let max = |t: &Tensor| t.max_pool2d(k, k, [0, 0], [1, 1], false);
        let feat = match pool {
            Pool::Avg => avg(x),
            Pool::Max => max(x),
            Pool::Min => -max(&-x),
            Pool::MaxMin => Tensor::cat(&[max(x), -max(&-x)], 1),
            Pool::Std | Pool::MeanStd => {
                let m1 = avg(x);
                let sd = (avg(&x.square()) - m1.square()).relu().sqrt();
                if pool == Pool::Std {
                    sd
                } else {
                    Tensor::cat(&[m1, sd], 1)
                }
            }
        };
        parts.push(feat.reshape([b, -1]));
    }
    Tensor::cat(&parts, 1)
}
