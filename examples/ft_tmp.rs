use normiqa::model::{BackboneName, LinearityIqa};
use normiqa::train::{self, DatasetSpec, TrainConfig};
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};
fn main() {
    let root = normiqa::cli::args::default_clive_root();
    let cfg = TrainConfig::new(DatasetSpec::Clive { root });
    let data = train::data::load(&cfg.data, cfg.seed).expect("CLIVE");
    eprintln!("threads {}", tch::get_num_threads());
    let vs = nn::VarStore::new(Device::Cpu);
    let m = LinearityIqa::new(&vs, cfg.model.clone());
    let wfile = BackboneName::EfficientNetLite0
        .default_weights()
        .expect("weights");
    normiqa::model::weights::load_pth(
        &vs,
        normiqa::model::linearity::BACKBONE_PREFIX,
        &wfile,
        m.backbone.ignored_weights(),
    )
    .unwrap();
    tch::no_grad(|| {
        let x = Tensor::randn([1, 3, 500, 500], (Kind::Float, Device::Cpu));
        for i in 0..6 {
            let t = Instant::now();
            let (a, _b) = m.features(&x, false);
            let _ = f64::try_from(a.sum(Kind::Float));
            eprintln!("randn {i} {:.3}", t.elapsed().as_secs_f64());
        }
        for pass in 0..3 {
            let t0 = Instant::now();
            let mut v = vec![];
            for i in 0..64 {
                let t = Instant::now();
                let x = normiqa::batch::to_tensor(&[&data.images[i]], Device::Cpu).unwrap();
                let (a, _b) = m.features(&x, false);
                let _ = f64::try_from(a.sum(Kind::Float));
                v.push(t.elapsed().as_secs_f64());
            }
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            eprintln!(
                "pass {pass} total {:.2} median {:.3} max {:.3}",
                t0.elapsed().as_secs_f64(),
                v[32],
                v[63]
            );
        }
        let x = Tensor::randn([1, 3, 500, 500], (Kind::Float, Device::Cpu));
        for i in 0..3 {
            let t = Instant::now();
            let out = m.forward(&x, false, false);
            let _ = f64::try_from(out[2].sum(Kind::Float));
            eprintln!("forward {i} {:.3}", t.elapsed().as_secs_f64());
        }
    });
}
