//! Hand-checked cases, error handling and invariance properties of
//! `normiqa_core::metrics`. Random vectors come from fixed-seed ChaCha8.

use normiqa_core::metrics::{
    average_ranks, krocc, paired_t_test, plcc, rmse, srocc, LinearMap, Metrics, MetricsError,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[track_caller]
fn approx(got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "got {got:.17e}, want {want:.17e}"
    );
}

/// Random vector with many ties: values on a grid of `levels` steps.
fn tied(rng: &mut ChaCha8Rng, n: usize, levels: u32) -> Vec<f64> {
    (0..n)
        .map(|_| rng.gen_range(0..levels) as f64 * 0.25 - 3.0)
        .collect()
}

fn noisy(rng: &mut ChaCha8Rng, x: &[f64], noise: f64) -> Vec<f64> {
    x.iter()
        .map(|&v| v + noise * rng.gen_range(-1.0..1.0))
        .collect()
}

/// O(n²) tau-b straight from the definition (Kendall 1945).
fn tau_b_brute(x: &[f64], y: &[f64]) -> f64 {
    let (mut s, mut n1, mut n2, mut n0) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            let dx = (x[i] - x[j]).signum() * ((x[i] != x[j]) as i32 as f64);
            let dy = (y[i] - y[j]).signum() * ((y[i] != y[j]) as i32 as f64);
            s += (dx * dy) as i64;
            n0 += 1;
            n1 += (dx == 0.0) as i64;
            n2 += (dy == 0.0) as i64;
        }
    }
    s as f64 / (((n0 - n1) * (n0 - n2)) as f64).sqrt()
}

// ---------- hand-checked ----------

#[test]
fn average_ranks_on_ties() {
    assert_eq!(
        average_ranks(&[10.0, 20.0, 20.0, 5.0]).unwrap(),
        [2.0, 3.5, 3.5, 1.0]
    );
    assert_eq!(average_ranks(&[1.0, 1.0, 1.0]).unwrap(), [2.0, 2.0, 2.0]);
    // -0.0 and 0.0 are the same value (as numpy).
    assert_eq!(average_ranks(&[0.0, -0.0, -1.0]).unwrap(), [2.5, 2.5, 1.0]);
}

#[test]
fn small_case_with_ties_by_hand() {
    // x ranks [1, 2.5, 2.5, 4], y ranks [1, 4, 2.5, 2.5]:
    // centred dot = 2.25, norms² = 4.5 each → SROCC = 0.5.
    // Pairs: 3 concordant, 1 discordant, 1 tied in x only, 1 tied in y only:
    // tau-b = (3 − 1) / sqrt((6 − 1)(6 − 1)) = 0.4.
    let x = [1.0, 2.0, 2.0, 3.0];
    let y = [1.0, 3.0, 2.0, 2.0];
    approx(srocc(&x, &y).unwrap(), 0.5, 1e-15);
    approx(krocc(&x, &y).unwrap(), 0.4, 1e-15);
    approx(krocc(&y, &x).unwrap(), 0.4, 1e-15);
    // PLCC: x̄ = 2, ȳ = 2: dx = [-1,0,0,1], dy = [-1,1,0,0] → 1/sqrt(2·2) = 0.5.
    approx(plcc(&x, &y).unwrap(), 0.5, 1e-15);
    // RMSE: diffs [0,-1,0,1] → sqrt(2/4).
    approx(rmse(&x, &y).unwrap(), 0.5f64.sqrt(), 1e-15);
}

#[test]
fn perfect_and_inverse_order() {
    let x: Vec<f64> = (0..20).map(|i| i as f64).collect();
    let up: Vec<f64> = x.iter().map(|v| v.powi(3) + 1.0).collect();
    let down: Vec<f64> = x.iter().map(|v| -v.exp()).collect();
    assert_eq!(srocc(&x, &up).unwrap(), 1.0);
    assert_eq!(krocc(&x, &up).unwrap(), 1.0);
    assert_eq!(srocc(&x, &down).unwrap(), -1.0);
    assert_eq!(krocc(&x, &down).unwrap(), -1.0);
    let lin: Vec<f64> = x.iter().map(|v| 3.0 * v - 7.0).collect();
    approx(plcc(&x, &lin).unwrap(), 1.0, 1e-15);
    approx(
        plcc(&lin, &x.iter().map(|v| -v).collect::<Vec<_>>()).unwrap(),
        -1.0,
        1e-15,
    );
    assert_eq!(rmse(&x, &x).unwrap(), 0.0);
}

#[test]
fn tau_b_with_ties_known_value() {
    // scipy.stats.kendalltau([1,2,2,3,3,3], [1,1,2,2,3,3]) = 0.78334945180064...
    // By hand: n0 = 15, tied in x n1 = 1 + 3 = 4, tied in y n2 = 3, tied in
    // both 1, so P + Q = 15 − 4 − 3 + 1 = 9 with Q = 0 → 9 / sqrt(11 · 12).
    let x = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0];
    let y = [1.0, 1.0, 2.0, 2.0, 3.0, 3.0];
    approx(krocc(&x, &y).unwrap(), 9.0 / (11.0f64 * 12.0).sqrt(), 1e-15);
    approx(tau_b_brute(&x, &y), 9.0 / (11.0f64 * 12.0).sqrt(), 1e-15);
}

#[test]
fn linear_map_exact_line_and_serde() {
    let pred = [0.0, 1.0, 2.0, 3.0];
    let mos = [1.0, 3.0, 5.0, 7.0];
    let m = LinearMap::fit(&pred, &mos).unwrap();
    assert_eq!(m, LinearMap { k: 2.0, b: 1.0 });
    assert_eq!(m.apply(&[4.0, -1.0]), [9.0, -1.0]);
    assert_eq!(m.apply_one(0.5), 2.0);
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<LinearMap>(&json).unwrap(), m);
    assert_eq!(LinearMap::default(), LinearMap { k: 1.0, b: 0.0 });
    let met = Metrics::compute(&pred, &mos).unwrap();
    assert_eq!(met.rmse, 0.0);
    assert_eq!(met.n, 4);
    let back: Metrics = serde_json::from_str(&serde_json::to_string(&met).unwrap()).unwrap();
    assert_eq!(back, met);
}

#[test]
fn paired_t_test_by_hand() {
    // d = [1, -1, 1, 1]: mean 0.5, s² = (3·0.25 + 2.25)/3 = 1, t = 0.5 / (1/2) = 1.
    let r = paired_t_test(&[2.0, 1.0, 4.0, 5.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    approx(r.t, 1.0, 1e-15);
    assert_eq!(r.df, 3.0);
    approx(r.mean_diff, 0.5, 1e-15);
    // Closed form for df = 3, u = t/√3: p = 1 − (2/π)(atan u + u/(1 + u²))
    // = 1 − (2/π)(π/6 + √3/4) = 2/3 − √3/(2π).
    approx(
        r.p_two_sided,
        2.0 / 3.0 - 3f64.sqrt() / (2.0 * std::f64::consts::PI),
        1e-14,
    );
    // Swapping the samples flips t, keeps p.
    let s = paired_t_test(&[1.0, 2.0, 3.0, 4.0], &[2.0, 1.0, 4.0, 5.0]).unwrap();
    assert_eq!((s.t, s.p_two_sided), (-r.t, r.p_two_sided));
    // Constant non-zero difference: t = +inf, p = 0 (as scipy).
    let c = paired_t_test(&[2.0, 3.0, 4.0], &[1.0, 2.0, 3.0]).unwrap();
    assert_eq!((c.t, c.p_two_sided, c.mean_diff), (f64::INFINITY, 0.0, 1.0));
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("p_two_sided"));
}

// ---------- errors ----------

#[test]
fn errors_are_clear() {
    let e = srocc(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]).unwrap_err();
    assert_eq!(
        e,
        MetricsError::LengthMismatch {
            left_name: "pred",
            left: 3,
            right_name: "mos",
            right: 4
        }
    );
    let msg = e.to_string();
    assert!(msg.contains('3') && msg.contains('4'), "{msg}");

    assert!(matches!(
        plcc(&[1.0], &[2.0]),
        Err(MetricsError::TooFewSamples { n: 1, min: 2 })
    ));
    assert!(matches!(
        krocc(&[], &[]),
        Err(MetricsError::TooFewSamples { n: 0, .. })
    ));
    assert!(matches!(
        rmse(&[], &[]),
        Err(MetricsError::TooFewSamples { n: 0, min: 1 })
    ));
    assert_eq!(rmse(&[1.0], &[3.0]).unwrap(), 2.0);

    let e = krocc(&[1.0, 2.0, 3.0], &[1.0, 2.0, f64::NAN]).unwrap_err();
    assert!(
        matches!(
            e,
            MetricsError::NonFinite {
                input: "mos",
                index: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("index 2"), "{e}");
    assert!(matches!(
        plcc(&[1.0, f64::INFINITY], &[1.0, 2.0]),
        Err(MetricsError::NonFinite {
            input: "pred",
            index: 1,
            ..
        })
    ));

    for f in [srocc, plcc, krocc] {
        assert!(matches!(
            f(&[1.0, 2.0, 3.0], &[5.0, 5.0, 5.0]),
            Err(MetricsError::ConstantInput { input: "mos", .. })
        ));
        assert!(matches!(
            f(&[0.5, 0.5], &[1.0, 2.0]),
            Err(MetricsError::ConstantInput { input: "pred", .. })
        ));
    }

    // Degenerate mapping: clear error, never NaN k.
    let e = LinearMap::fit(&[0.3, 0.3, 0.3], &[1.0, 2.0, 3.0]).unwrap_err();
    assert!(
        matches!(e, MetricsError::ConstantInput { input: "pred", .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("constant"), "{e}");
    assert!(Metrics::compute(&[0.3, 0.3, 0.3], &[1.0, 2.0, 3.0]).is_err());
    // Constant MOS: k = 0, mapped predictions constant → correlation undefined.
    assert_eq!(
        LinearMap::fit(&[1.0, 2.0], &[4.0, 4.0]).unwrap(),
        LinearMap { k: 0.0, b: 4.0 }
    );
    assert!(matches!(
        Metrics::compute(&[1.0, 2.0], &[4.0, 4.0]),
        Err(MetricsError::ConstantInput { .. })
    ));
    // Mapping that overflows.
    let huge = LinearMap { k: 1e308, b: 0.0 };
    assert!(matches!(
        Metrics::compute_mapped(&[1.0, 10.0], &[1.0, 2.0], Some(&huge)),
        Err(MetricsError::NonFinite {
            input: "mapped pred",
            index: 1,
            ..
        })
    ));
    assert!(huge.try_apply(&[10.0]).is_err());

    assert!(matches!(
        paired_t_test(&[1.0, 2.0], &[1.0, 2.0]),
        Err(MetricsError::ConstantInput { input: "a - b", .. })
    ));
    assert!(matches!(
        paired_t_test(&[1.0], &[2.0]),
        Err(MetricsError::TooFewSamples { n: 1, min: 2 })
    ));
    assert!(matches!(
        paired_t_test(&[1.0, 2.0], &[1.0]),
        Err(MetricsError::LengthMismatch {
            left_name: "a",
            left: 2,
            right_name: "b",
            right: 1
        })
    ));
}

// ---------- properties ----------

#[test]
fn krocc_matches_brute_force_tau_b() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (n, levels) in [(2, 3), (3, 2), (17, 4), (300, 7), (500, 40), (257, 1000)] {
        for _ in 0..5 {
            let x = tied(&mut rng, n, levels);
            let y = noisy(&mut rng, &x, 1.0)
                .iter()
                .map(|v| (v * 2.0).round())
                .collect::<Vec<_>>();
            if x.iter().all(|&v| v == x[0]) || y.iter().all(|&v| v == y[0]) {
                continue;
            }
            approx(krocc(&x, &y).unwrap(), tau_b_brute(&x, &y), 1e-12);
            approx(krocc(&x, &y).unwrap(), krocc(&y, &x).unwrap(), 1e-15);
        }
    }
}

#[test]
fn rank_correlations_invariant_to_monotone_transforms() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for _ in 0..10 {
        let x = tied(&mut rng, 400, 30);
        let y = noisy(&mut rng, &x, 2.0);
        let (s, k) = (srocc(&x, &y).unwrap(), krocc(&x, &y).unwrap());
        let inc: [fn(f64) -> f64; 3] = [f64::exp, |v| v * v * v + v, f64::atan];
        for f in inc {
            let fx: Vec<f64> = x.iter().map(|&v| f(v)).collect();
            let fy: Vec<f64> = y.iter().map(|&v| f(v)).collect();
            assert_eq!(srocc(&fx, &y).unwrap(), s);
            assert_eq!(krocc(&fx, &fy).unwrap(), k);
            assert_eq!(srocc(&fx, &fy).unwrap(), s);
        }
        // Decreasing transform flips the sign.
        let nx: Vec<f64> = x.iter().map(|&v| (-v).exp()).collect();
        approx(srocc(&nx, &y).unwrap(), -s, 1e-15);
        approx(krocc(&nx, &y).unwrap(), -k, 1e-15);
    }
}

#[test]
fn plcc_invariant_to_positive_affine_maps() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..10 {
        let x: Vec<f64> = (0..300).map(|_| rng.gen_range(-5.0..5.0)).collect();
        let y: Vec<f64> = x
            .iter()
            .map(|v| v.tanh() + rng.gen_range(-0.5..0.5))
            .collect();
        let r = plcc(&x, &y).unwrap();
        for (a, c) in [(3.7, -12.0), (1e-3, 0.5), (2.5e4, 10.0)] {
            let ax: Vec<f64> = x.iter().map(|v| a * v + c).collect();
            approx(plcc(&ax, &y).unwrap(), r, 1e-12);
            let ny: Vec<f64> = y.iter().map(|v| -a * v + c).collect();
            approx(plcc(&x, &ny).unwrap(), -r, 1e-12);
        }
    }
}

#[test]
fn linear_map_keeps_plcc_and_centres_residuals() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for sign in [1.0, -1.0] {
        for _ in 0..10 {
            let x: Vec<f64> = (0..500).map(|_| rng.gen_range(0.0..1.0)).collect();
            let y: Vec<f64> = x
                .iter()
                .map(|v| 60.0 + sign * 30.0 * v.sqrt() + rng.gen_range(-8.0..8.0))
                .collect();
            let map = LinearMap::fit(&x, &y).unwrap();
            assert_eq!(map.k.signum(), sign);
            let mapped = map.apply(&x);
            approx(
                plcc(&mapped, &y).unwrap(),
                sign * plcc(&x, &y).unwrap(),
                1e-12,
            );
            let res: Vec<f64> = mapped.iter().zip(&y).map(|(p, m)| m - p).collect();
            let scale: f64 = y.iter().map(|v| v.abs()).sum();
            assert!(res.iter().sum::<f64>().abs() <= 1e-12 * scale);
            // Normal equation for k: residuals orthogonal to the predictions.
            let dot: f64 = res.iter().zip(&x).map(|(r, v)| r * v).sum();
            assert!(dot.abs() <= 1e-12 * scale);
            // The least-squares map minimises RMSE: any perturbation is worse.
            let best = rmse(&mapped, &y).unwrap();
            for (dk, db) in [(1e-3, 0.0), (-1e-3, 0.0), (0.0, 1e-3), (0.0, -1e-3)] {
                let other = LinearMap {
                    k: map.k + dk,
                    b: map.b + db,
                }
                .apply(&x);
                assert!(rmse(&other, &y).unwrap() > best);
            }
            // Metrics on mapped predictions: |PLCC|, SROCC sign-corrected.
            let m = Metrics::compute(&x, &y).unwrap();
            approx(m.plcc, plcc(&x, &y).unwrap().abs(), 1e-12);
            approx(m.srocc, sign * srocc(&x, &y).unwrap(), 1e-12);
            approx(m.rmse, best, 0.0);
        }
    }
}

#[test]
fn large_n_is_fast() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let n = 100_000;
    let x = tied(&mut rng, n, 2000);
    let y = noisy(&mut rng, &x, 50.0);
    let t0 = std::time::Instant::now();
    let k = krocc(&x, &y).unwrap();
    let t_k = t0.elapsed();
    let t0 = std::time::Instant::now();
    let m = Metrics::compute(&x, &y).unwrap();
    let t_m = t0.elapsed();
    eprintln!("n = {n}: krocc {t_k:?}, Metrics::compute {t_m:?}; tau-b {k}, {m:?}");
    assert!(k > 0.0 && k < 1.0);
    assert_eq!(m.krocc, k);
    assert_eq!(krocc(&x, &x).unwrap(), 1.0);
    assert_eq!(srocc(&x, &x).unwrap(), 1.0);
    // Generous bound (debug build, shared CPU): O(n²) would take many seconds.
    assert!(t_k.as_secs_f64() < 5.0, "krocc took {t_k:?}");
}
