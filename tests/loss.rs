//! Norm-in-Norm loss properties from the paper, checked in f64 on CPU.

use normiqa::loss::{self, LossConfig, LossKind};
use tch::{Kind, Tensor};

fn t(v: &[f64]) -> Tensor {
    Tensor::from_slice(v).to_kind(Kind::Double)
}

fn val(x: &Tensor) -> f64 {
    f64::try_from(x).unwrap()
}

/// Deterministic pseudo-random vectors (an LCG: no dependency on the RNG crates' streams).
fn data(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut s = seed;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let mos: Vec<f64> = (0..n).map(|_| 100.0 * next()).collect();
    let pred: Vec<f64> = mos.iter().map(|m| 0.03 * m + 0.5 * next() - 1.0).collect();
    (pred, mos)
}

fn nin(p: f64, q: f64, alpha: [f64; 2]) -> LossConfig {
    LossConfig {
        kind: LossKind::NormInNorm { p, q, alpha },
        ..Default::default()
    }
}

fn plcc(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn invariant_to_affine_maps_of_predictions_eq11() {
    let (pred, mos) = data(16, 1);
    for &(p, q) in &[(1.0, 2.0), (2.0, 2.0), (1.0, 1.0), (2.0, 1.0), (3.0, 1.5)] {
        let cfg = nin(p, q, [1.0, 0.0]);
        let l0 = val(&cfg.compute(&t(&pred), &t(&mos)).unwrap());
        let mapped: Vec<f64> = pred.iter().map(|x| 7.5 * x - 3.0).collect();
        let l1 = val(&cfg.compute(&t(&mapped), &t(&mos)).unwrap());
        assert!((l0 - l1).abs() < 1e-9, "p={p} q={q}: {l0} vs {l1}");
        // A negative k1 flips the sign of Ŝ, so the loss changes: the invariance is for k1 > 0.
        let flipped: Vec<f64> = pred.iter().map(|x| -x).collect();
        let l2 = val(&cfg.compute(&t(&flipped), &t(&mos)).unwrap());
        assert!(l2 > l0 + 1e-3);
    }
}

#[test]
fn p2_q2_equals_one_minus_plcc_over_two_eq14() {
    for seed in 0..5 {
        let (pred, mos) = data(12, seed);
        let l = val(&nin(2.0, 2.0, [1.0, 0.0])
            .compute(&t(&pred), &t(&mos))
            .unwrap());
        let rho = plcc(&pred, &mos);
        // ε = 1e-8 in the denominators makes the identity hold to ~1e-8 relative.
        assert!(
            (l - (1.0 - rho) / 2.0).abs() < 1e-7,
            "{l} vs {}",
            (1.0 - rho) / 2.0
        );
    }
}

#[test]
fn rmse_after_least_squares_from_l_prime_eq18() {
    // With p = q = 2: RMSE of the least-squares line = sqrt(4·b²·l′/N), b = ‖y − ȳ‖₂.
    let (pred, mos) = data(20, 7);
    let n = pred.len() as f64;
    let lp = val(&nin(2.0, 2.0, [0.0, 1.0])
        .compute(&t(&pred), &t(&mos))
        .unwrap());
    let mm = mos.iter().sum::<f64>() / n;
    let b = mos.iter().map(|y| (y - mm).powi(2)).sum::<f64>().sqrt();
    // Least squares by the normal equations (independent of the crate's metrics).
    let mp = pred.iter().sum::<f64>() / n;
    let sxy: f64 = pred
        .iter()
        .zip(&mos)
        .map(|(x, y)| (x - mp) * (y - mm))
        .sum();
    let sxx: f64 = pred.iter().map(|x| (x - mp).powi(2)).sum();
    let k = sxy / sxx;
    let c = mm - k * mp;
    let rmse = (pred
        .iter()
        .zip(&mos)
        .map(|(x, y)| (k * x + c - y).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    let from_loss = (4.0 * b * b * lp / n).sqrt();
    assert!(
        (rmse - from_loss).abs() / rmse < 1e-6,
        "{rmse} vs {from_loss}"
    );
}

#[test]
fn bounded_between_zero_and_one() {
    for seed in 0..20 {
        let (mut pred, mos) = data(2 + (seed as usize % 9), seed);
        if seed % 3 == 0 {
            pred.reverse();
        }
        for &(p, q) in &[(1.0, 2.0), (2.0, 2.0), (1.0, 1.0), (2.0, 1.0), (1.5, 3.0)] {
            for alpha in [[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]] {
                let l = val(&nin(p, q, alpha).compute(&t(&pred), &t(&mos)).unwrap());
                assert!(
                    (0.0..=1.0 + 1e-12).contains(&l),
                    "p={p} q={q} alpha={alpha:?}: {l}"
                );
            }
        }
        // The worst case: perfectly anti-correlated predictions reach 1 for p = q = 2.
        let anti: Vec<f64> = mos.iter().map(|m| -m).collect();
        let l = val(&nin(2.0, 2.0, [1.0, 0.0])
            .compute(&t(&anti), &t(&mos))
            .unwrap());
        assert!((l - 1.0).abs() < 1e-7);
    }
}

#[test]
fn batch_of_one_gives_zero_with_a_graph() {
    let pred = t(&[3.0]).set_requires_grad(true);
    for kind in [
        LossKind::default(),
        LossKind::Mse,
        LossKind::Mae,
        LossKind::Linearity { alpha: [1.0, 0.0] },
    ] {
        let cfg = LossConfig {
            kind,
            ..Default::default()
        };
        let l = cfg.compute(&pred, &t(&[50.0])).unwrap();
        if kind.normalises_targets() {
            assert_eq!(val(&l), 0.0);
        }
        l.backward();
    }
}

#[test]
fn constant_mos_in_a_batch_gives_the_references_epsilon_value() {
    // The reference: yt = (y - mean) / (EPS + ‖y - mean‖_q) = 0, so l = ‖Ŝ‖_p^p / c with
    // Ŝ = (ŷ - mean) / (EPS + ‖ŷ - mean‖_q). Here ŷ - mean = [-1, 0, 1], p = 1, q = 2.
    let pred = t(&[1.0, 2.0, 3.0]).set_requires_grad(true);
    let l = LossConfig::default()
        .compute(&pred, &t(&[50.0, 50.0, 50.0]))
        .unwrap();
    let c = loss::norm_in_norm_scale(1.0, 2.0, 3);
    let expected = 2.0 / (2f64.sqrt() + loss::EPS) / c;
    assert!((val(&l) - expected).abs() < 1e-12, "{} vs {expected}", val(&l));
    l.backward();
    let g = Vec::<f64>::try_from(pred.grad()).unwrap();
    assert!(g.iter().all(|x| x.is_finite()), "{g:?}");
    // Equal predictions too: loss 0, gradient 0 (as torch.norm's at the zero vector), not NaN.
    for mos in [[50.0, 50.0, 50.0], [40.0, 50.0, 60.0]] {
        let pred = t(&[2.0, 2.0, 2.0]).set_requires_grad(true);
        let l = LossConfig::default().compute(&pred, &t(&mos)).unwrap();
        l.backward();
        let g = Vec::<f64>::try_from(pred.grad()).unwrap();
        assert!(g.iter().all(|x| x.is_finite()), "MOS {mos:?}: {g:?}");
    }
    // Every loss goes on (all normalise with an ε, or do not normalise).
    for name in ["mae", "mse", "linearity", "min-max-norm", "mean-norm", "scaling"] {
        let cfg = LossConfig {
            kind: name.parse().unwrap(),
            ..Default::default()
        };
        let l = cfg.compute(&t(&[1.0, 2.0, 3.0]), &t(&[50.0, 50.0, 50.0])).unwrap();
        assert!(val(&l).is_finite(), "{name}");
    }
}

#[test]
fn mae_mse_values() {
    let (p, y) = (t(&[1.0, 2.0, 4.0]), t(&[2.0, 2.0, 1.0]));
    let mae = LossConfig {
        kind: LossKind::Mae,
        ..Default::default()
    };
    let mse = LossConfig {
        kind: LossKind::Mse,
        ..Default::default()
    };
    assert!((val(&mae.compute(&p, &y).unwrap()) - 4.0 / 3.0).abs() < 1e-12);
    assert!((val(&mse.compute(&p, &y).unwrap()) - 10.0 / 3.0).abs() < 1e-12);
}

/// Analytic gradient of l = ‖Ŝ − S‖_p^p / c with respect to ŷ (eq. 10 of the paper, written via
/// the chain rule through the centring and the L^q normalisation; ε neglected).
fn analytic_grad(pred: &[f64], mos: &[f64], p: f64, q: f64) -> Vec<f64> {
    let n = pred.len();
    let nf = n as f64;
    let centre = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / nf;
        v.iter().map(|x| x - m).collect::<Vec<_>>()
    };
    let norm = |v: &[f64]| v.iter().map(|x| x.abs().powf(q)).sum::<f64>().powf(1.0 / q);
    let yc = centre(pred);
    let bh = norm(&yc);
    let s_hat: Vec<f64> = yc.iter().map(|x| x / bh).collect();
    let sc = centre(mos);
    let b = norm(&sc);
    let s: Vec<f64> = sc.iter().map(|x| x / b).collect();
    let c = loss::norm_in_norm_scale(p, q, n as i64);
    // g = ∂l/∂Ŝ
    let g: Vec<f64> = s_hat
        .iter()
        .zip(&s)
        .map(|(a, b)| p * (a - b).abs().powf(p - 1.0) * (a - b).signum() / c)
        .collect();
    // ∂l/∂ŷc = (g − Ŝ^{q−1}-weighted projection)/b̂: ∂Ŝ_i/∂ŷc_j = (δij − Ŝ_i·|Ŝ_j|^{q−1}·sgn(Ŝ_j))/b̂
    let w: Vec<f64> = s_hat
        .iter()
        .map(|x| x.abs().powf(q - 1.0) * x.signum())
        .collect();
    let gs: f64 = g.iter().zip(&s_hat).map(|(a, b)| a * b).sum();
    let gc: Vec<f64> = (0..n).map(|j| (g[j] - gs * w[j]) / bh).collect();
    // centring: ∂ŷc_j/∂ŷ_k = δjk − 1/N
    let mean_gc = gc.iter().sum::<f64>() / nf;
    gc.iter().map(|x| x - mean_gc).collect()
}

#[test]
fn autograd_matches_analytic_gradient_eq10() {
    for &(p, q) in &[(1.0, 1.0), (1.0, 2.0), (2.0, 1.0), (2.0, 2.0)] {
        let (pred, mos) = data(9, 42);
        let x = t(&pred).set_requires_grad(true);
        let l = nin(p, q, [1.0, 0.0]).compute(&x, &t(&mos)).unwrap();
        l.backward();
        let g: Vec<f64> = Vec::<f64>::try_from(x.grad()).unwrap();
        let want = analytic_grad(&pred, &mos, p, q);
        for (a, b) in g.iter().zip(&want) {
            assert!(
                (a - b).abs() < 1e-6 * (1.0 + b.abs()),
                "p={p} q={q}: autograd {g:?} vs analytic {want:?}"
            );
        }
    }
}

#[test]
fn option_validation() {
    assert!(LossKind::from_parts("norm-in-norm", 0.5, 2.0, [1.0, 0.0]).is_err());
    assert!(LossKind::from_parts("norm-in-norm", 1.0, 2.0, [0.0, 0.0]).is_err());
    assert!(LossKind::from_parts("huber", 1.0, 2.0, [1.0, 0.0]).is_err());
    assert_eq!("mse".parse::<LossKind>().unwrap(), LossKind::Mse);
}
