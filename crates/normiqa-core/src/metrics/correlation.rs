//! Rank and linear correlations, RMSE.

use std::cmp::Ordering;

use super::{
    check_finite, check_not_constant, check_pair, max_abs, mean, sum, MetricsError, PRED_MOS,
};

/// Order of finite floats (`-0.0 == 0.0`, as in numpy).
fn cmp_finite(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).expect("values were checked to be finite")
}

/// Ranks `1..=n` with ties given the average of the ranks they span
/// (`scipy.stats.rankdata(method='average')`).
pub fn average_ranks(x: &[f64]) -> Result<Vec<f64>, MetricsError> {
    check_finite(x, "x")?;
    Ok(average_ranks_unchecked(x))
}

fn average_ranks_unchecked(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_unstable_by(|&i, &j| cmp_finite(x[i], x[j]));
    let mut ranks = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && x[idx[j]] == x[idx[i]] {
            j += 1;
        }
        // Sorted positions i..j hold ranks i+1 ..= j; their mean is (i+1+j)/2.
        let r = (i + 1 + j) as f64 / 2.0;
        for &k in &idx[i..j] {
            ranks[k] = r;
        }
        i = j;
    }
    ranks
}

/// Spearman rank-order correlation coefficient (SROCC): the Pearson
/// correlation of the average ranks,
/// `ρ = cov(R(ŷ), R(y)) / (σ_R(ŷ) σ_R(y))`.
///
/// Needs ≥ 2 finite samples and non-constant inputs.
pub fn srocc(pred: &[f64], mos: &[f64]) -> Result<f64, MetricsError> {
    check_pair(pred, mos, PRED_MOS, 2)?;
    check_not_constant(pred, "pred", "SROCC")?;
    check_not_constant(mos, "mos", "SROCC")?;
    let (rp, rm) = (average_ranks_unchecked(pred), average_ranks_unchecked(mos));
    Ok(pearson_unchecked(&rp, &rm))
}

/// Pearson linear correlation coefficient (PLCC):
/// `r = Σ(ŷᵢ−ȳ̂)(yᵢ−ȳ) / sqrt(Σ(ŷᵢ−ȳ̂)² Σ(yᵢ−ȳ)²)`.
///
/// Needs ≥ 2 finite samples and non-constant inputs.
pub fn plcc(pred: &[f64], mos: &[f64]) -> Result<f64, MetricsError> {
    check_pair(pred, mos, PRED_MOS, 2)?;
    check_not_constant(pred, "pred", "PLCC")?;
    check_not_constant(mos, "mos", "PLCC")?;
    Ok(pearson_unchecked(pred, mos))
}

/// Centres `x` and scales it by its largest deviation (overflow/underflow safe).
fn centred_scaled(x: &[f64]) -> Vec<f64> {
    let m = mean(x);
    let mut d: Vec<f64> = x.iter().map(|&v| v - m).collect();
    let s = max_abs(&d);
    if s > 0.0 && s.is_finite() {
        d.iter_mut().for_each(|v| *v /= s);
    }
    d
}

/// Pearson r for finite, non-constant inputs of equal length ≥ 2.
fn pearson_unchecked(x: &[f64], y: &[f64]) -> f64 {
    let (dx, dy) = (centred_scaled(x), centred_scaled(y));
    let sxy = sum(dx.iter().zip(&dy).map(|(a, b)| a * b));
    let sxx = sum(dx.iter().map(|a| a * a));
    let syy = sum(dy.iter().map(|b| b * b));
    // Scaled sums are in [1, n], so the product neither overflows nor underflows;
    // sqrt(a·a) == a makes r(x, x) exactly 1.
    (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0)
}

/// Kendall rank-order correlation coefficient (KROCC), tau-b:
/// `τ_b = (P − Q) / sqrt((n₀ − n₁)(n₀ − n₂))` with `P`/`Q` the concordant /
/// discordant pairs, `n₀ = n(n−1)/2` and `n₁`, `n₂` the pairs tied in `pred`,
/// `mos` (Kendall 1945; `scipy.stats.kendalltau` default `variant='b'`).
///
/// O(n log n): sort by (pred, mos), count discordant pairs as inversions of
/// `mos` by merge sort (Knight 1966). Needs ≥ 2 finite samples, non-constant.
pub fn krocc(pred: &[f64], mos: &[f64]) -> Result<f64, MetricsError> {
    check_pair(pred, mos, PRED_MOS, 2)?;
    check_not_constant(pred, "pred", "KROCC")?;
    check_not_constant(mos, "mos", "KROCC")?;
    Ok(kendall_tau_b_unchecked(pred, mos))
}

/// Σ c(c−1)/2 over runs of equal values (by `eq`) in a sorted sequence.
fn tied_pairs<T>(sorted: &[T], eq: impl Fn(&T, &T) -> bool) -> u64 {
    let mut total = 0u64;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && eq(&sorted[i], &sorted[j]) {
            j += 1;
        }
        let c = (j - i) as u64;
        total += c * (c - 1) / 2;
        i = j;
    }
    total
}

fn kendall_tau_b_unchecked(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    let mut xy: Vec<(f64, f64)> = x.iter().copied().zip(y.iter().copied()).collect();
    xy.sort_unstable_by(|a, b| cmp_finite(a.0, b.0).then_with(|| cmp_finite(a.1, b.1)));
    let x_ties = tied_pairs(&xy, |a, b| a.0 == b.0);
    let joint_ties = tied_pairs(&xy, |a, b| a.0 == b.0 && a.1 == b.1);
    // Within a run of equal x, y is ascending, so strict inversions of y are
    // exactly the discordant pairs.
    let mut ys: Vec<f64> = xy.iter().map(|p| p.1).collect();
    let discordant = sort_count_inversions(&mut ys);
    let y_ties = tied_pairs(&ys, |a, b| a == b);

    let total = (n as u64) * (n as u64 - 1) / 2;
    // total = P + Q + (x_ties − joint) + (y_ties − joint) + joint
    let p_minus_q = total as i128 - x_ties as i128 - y_ties as i128 + joint_ties as i128
        - 2 * discordant as i128;
    let tau =
        p_minus_q as f64 / ((total - x_ties) as f64).sqrt() / ((total - y_ties) as f64).sqrt();
    tau.clamp(-1.0, 1.0)
}

/// Sorts `v` ascending (stable merge sort) and returns the number of pairs
/// `i < j` with `v[i] > v[j]` (strict).
fn sort_count_inversions(v: &mut [f64]) -> u64 {
    let n = v.len();
    let mut buf = v.to_vec();
    let mut inversions = 0u64;
    let mut width = 1;
    // Bottom-up merge sort, alternating between `v` and `buf`.
    let mut src_is_v = true;
    while width < n {
        {
            let (src, dst): (&[f64], &mut [f64]) = if src_is_v {
                (&*v, &mut buf[..])
            } else {
                (&buf[..], &mut *v)
            };
            let mut start = 0;
            while start < n {
                let mid = (start + width).min(n);
                let end = (start + 2 * width).min(n);
                let (mut i, mut j, mut k) = (start, mid, start);
                while i < mid && j < end {
                    if src[i] <= src[j] {
                        dst[k] = src[i];
                        i += 1;
                    } else {
                        dst[k] = src[j];
                        inversions += (mid - i) as u64;
                        j += 1;
                    }
                    k += 1;
                }
                dst[k..k + (mid - i)].copy_from_slice(&src[i..mid]);
                k += mid - i;
                dst[k..k + (end - j)].copy_from_slice(&src[j..end]);
                start = end;
            }
        }
        src_is_v = !src_is_v;
        width *= 2;
    }
    if !src_is_v {
        v.copy_from_slice(&buf);
    }
    inversions
}

/// Root mean squared error `sqrt(Σ(ŷᵢ − yᵢ)² / n)`; on the MOS scale only if
/// `pred` has been mapped (see [`super::LinearMap`]). Needs ≥ 1 finite sample.
pub fn rmse(pred: &[f64], mos: &[f64]) -> Result<f64, MetricsError> {
    check_pair(pred, mos, PRED_MOS, 1)?;
    let d: Vec<f64> = pred.iter().zip(mos).map(|(p, m)| p - m).collect();
    let s = max_abs(&d);
    if s == 0.0 {
        return Ok(0.0);
    }
    if !s.is_finite() {
        // Only reachable when a difference of finite values overflows.
        return Ok(f64::INFINITY);
    }
    let ms = sum(d.iter().map(|v| (v / s) * (v / s))) / d.len() as f64;
    Ok(s * ms.sqrt())
}
