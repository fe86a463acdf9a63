use normiqa_core::data::split::{permutation, split_ids, SplitMethod};
use normiqa_core::data::{DataError, Dataset, Ratios, Sample, Split};
use std::collections::HashSet;

fn sample(name: &str, reference: Option<&str>) -> Sample {
    Sample {
        name: name.into(),
        path: name.into(),
        mos: 1.0,
        mos_std: None,
        reference: reference.map(Into::into),
        distortion: None,
        level: None,
    }
}

fn check_partition(s: &Split, n: usize) {
    let all: Vec<usize> = s
        .train
        .iter()
        .chain(&s.val)
        .chain(&s.test)
        .copied()
        .collect();
    assert_eq!(all.len(), n);
    assert_eq!(all.iter().copied().collect::<HashSet<_>>().len(), n);
    for set in [&s.train, &s.val, &s.test] {
        assert!(set.windows(2).all(|w| w[0] < w[1]), "sets are ascending");
    }
}

#[test]
fn cuts_truncate_like_python_int() {
    // int(0.6*1162) = int(697.1999...) = 697; int(0.8*1162) = int(929.6) = 929
    assert_eq!(Ratios::default().cuts(1162), (697, 929));
    // 0.7*10 = 7.000000000000001 -> 7 ; 0.6*5 = 3.0 ; 0.8*5 = 4.0
    assert_eq!(Ratios::new(0.7, 0.9).cuts(10), (7, 9));
    assert_eq!(Ratios::default().cuts(5), (3, 4));
    // 0.29*100 = 28.999999999999996 -> 28 in Python
    assert_eq!(Ratios::new(0.29, 0.5).cuts(100), (28, 50));
}

#[test]
fn from_permutation_follows_reference_order() {
    let perm = [4, 2, 0, 3, 1, 9, 8, 7, 6, 5];
    let s = Split::from_permutation(&perm, Ratios::default()).unwrap();
    assert_eq!(s.train, vec![0, 1, 2, 3, 4, 9]);
    assert_eq!(s.val, vec![7, 8]);
    assert_eq!(s.test, vec![5, 6]);
    check_partition(&s, 10);
}

#[test]
fn from_permutation_rejects_non_permutations() {
    assert!(matches!(
        Split::from_permutation(&[0, 0, 1], Ratios::default()),
        Err(DataError::BadSplit(_))
    ));
    assert!(matches!(
        Split::from_permutation(&[0, 5, 1], Ratios::default()),
        Err(DataError::BadSplit(_))
    ));
}

#[test]
fn random_is_deterministic_and_seed_dependent() {
    let a = Split::random(1000, 7, Ratios::default()).unwrap();
    let b = Split::random(1000, 7, Ratios::default()).unwrap();
    let c = Split::random(1000, 8, Ratios::default()).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!((a.train.len(), a.val.len(), a.test.len()), (600, 200, 200));
    check_partition(&a, 1000);
    // Pinned: ChaCha8 + rand 0.8 shuffle must not drift between versions.
    assert_eq!(permutation(10, 0), vec![3, 8, 5, 2, 7, 1, 0, 4, 9, 6]);
}

#[test]
fn eighty_twenty_protocol_has_no_val() {
    let s = Split::random(100, 1, Ratios::train_test(0.8)).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (80, 0, 20));
    assert!(Ratios::train_test(0.8).no_val());
}

#[test]
fn empty_sets_are_errors_naming_the_options() {
    // val empty by rounding though not asked for
    let e = Split::random(3, 0, Ratios::new(0.5, 0.6)).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            DataError::EmptySet {
                set: "validation",
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("--train-ratio") && msg.contains("--train-val-ratio"),
        "{msg}"
    );
    // train empty
    let e = Split::random(3, 0, Ratios::new(0.1, 0.8)).unwrap_err();
    assert!(matches!(e, DataError::EmptySet { set: "train", .. }), "{e}");
    // the test set is never empty by rounding (int(r*n) < n for r < 1)
    let s = Split::random(4, 0, Ratios::new(0.5, 0.99)).unwrap();
    assert_eq!(s.test.len(), 1);
    // no test asked for explicitly
    let s = Split::random(4, 0, Ratios::new(0.5, 1.0)).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (2, 2, 0));
    // invalid ratios
    let e = Split::random(10, 0, Ratios::new(0.8, 0.6)).unwrap_err();
    assert!(
        matches!(e, DataError::BadRatios { .. }) && e.to_string().contains("--train-val-ratio"),
        "{e}"
    );
    assert!(Split::random(10, 0, Ratios::new(0.0, 0.6)).is_err());
    assert!(Split::random(10, 0, Ratios::new(f64::NAN, 0.6)).is_err());
}

fn synthetic_dataset(n_refs: usize, per_ref: usize) -> Dataset {
    let mut samples = Vec::new();
    for r in 0..n_refs {
        for k in 0..per_ref {
            samples.push(sample(
                &format!("I{r:02}_{k}.png"),
                Some(&format!("I{r:02}")),
            ));
        }
    }
    Dataset {
        name: "t".into(),
        samples,
        higher_is_better: true,
    }
}

#[test]
fn by_reference_keeps_references_apart() {
    let ds = synthetic_dataset(10, 5);
    let s = Split::by_reference(&ds, 3, Ratios::default()).unwrap();
    check_partition(&s, 50);
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (30, 10, 10));
    let refs = |set: &[usize]| {
        set.iter()
            .map(|&i| ds.samples[i].reference.clone().unwrap())
            .collect::<HashSet<_>>()
    };
    let (a, b, c) = (refs(&s.train), refs(&s.val), refs(&s.test));
    assert!(a.is_disjoint(&b) && a.is_disjoint(&c) && b.is_disjoint(&c));
    assert_eq!(s, Split::by_reference(&ds, 3, Ratios::default()).unwrap());
}

#[test]
fn by_reference_needs_references() {
    let mut ds = synthetic_dataset(3, 2);
    ds.samples[4].reference = None;
    let e = Split::by_reference(&ds, 0, Ratios::default()).unwrap_err();
    assert!(
        matches!(e, DataError::MissingReference { index: 4, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("I02_0.png"), "{e}");
}

#[test]
fn all_test_and_split_ids() {
    let s = Split::all_test(5);
    assert_eq!(s.test, vec![0, 1, 2, 3, 4]);
    assert!(s.train.is_empty() && s.val.is_empty());

    let ds = synthetic_dataset(10, 3);
    let v = split_ids(&ds, SplitMethod::Random, 100, &[0, 1, 2], Ratios::default()).unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[1], Split::random(30, 101, Ratios::default()).unwrap());
    assert_ne!(v[0], v[1]);
    let w = split_ids(&ds, SplitMethod::ByReference, 100, &[2], Ratios::default()).unwrap();
    assert_eq!(
        w[0],
        Split::by_reference(&ds, 102, Ratios::default()).unwrap()
    );
}
