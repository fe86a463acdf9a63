//! Test helpers: tiny synthetic datasets and a minimal writer of PyTorch zip-format state dicts.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};

/// Whether bf16 runs on the CPU's AVX-512 BF16 instructions here. Otherwise prints a NOTICE
/// naming `check` and returns false: the bf16 tolerances were measured on those instructions,
/// and elsewhere bf16 is emulated (other rounding and accumulation), so the check is skipped.
pub fn bf16_hardware(check: &str) -> bool {
    if normiqa::model::precision::cpu_has_bf16() {
        return true;
    }
    eprintln!(
        "NOTICE: {check}: skipped: this CPU has no AVX-512 BF16 (or ONEDNN_MAX_CPU_ISA rules it \
         out), so bf16 is emulated and the tolerances measured on BF16 hardware do not apply"
    );
    false
}

/// A training configuration on [`synthetic_dataset`] (`n` images of `size` px, random split):
/// random weights, 2 epochs of batch 4 at lr 1e-3 on the CPU.
pub fn tiny_train_config(dir: &Path, n: usize, size: u32) -> normiqa::run::TrainConfig {
    let (csv, images) = synthetic_dataset(dir, n, size);
    let mut cfg = csv_train_config(csv, images);
    cfg.random_init = true;
    cfg.epochs = 2;
    cfg.batch_size = 4;
    cfg.lr = 1e-3;
    cfg.device = "cpu".into();
    cfg
}

/// [`tiny_train_config`] with `n` images of `size` px for frozen heads on the pretrained Lite0
/// (cached features, one epoch, the feature cache in `dir`): a quick run whose outputs move with
/// the image (a random-initialised backbone scores every image nearly alike).
pub fn tiny_frozen_config(dir: &Path, n: usize, size: u32) -> normiqa::run::TrainConfig {
    std::env::set_var("NORMIQA_FEATURE_CACHE", dir.join("cache"));
    let mut cfg = tiny_train_config(dir, n, size);
    cfg.random_init = false;
    cfg.epochs = 1;
    cfg.ft_lr_ratio = 0.0;
    cfg
}

/// The error text (with its causes) of loading the model folder `dir`, which must be refused.
pub fn load_refusal(dir: &Path) -> String {
    match normiqa::infer::trained::TrainedModel::load(dir, tch::Device::Cpu, None) {
        Ok(_) => panic!("{} was loaded", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

/// The reference defaults on a CSV `image,mos` and its image folder, split at random by image.
pub fn csv_train_config(csv: PathBuf, images: PathBuf) -> normiqa::run::TrainConfig {
    use normiqa::run::{SplitProtocol, TrainConfig};
    let mut cfg = TrainConfig::new(normiqa::run::dataset::csv::spec(csv, images));
    cfg.data.split = SplitProtocol::Random;
    cfg
}

/// Writes `n` small images whose "quality" (MOS) decreases with added noise, and a CSV
/// `image,mos` for them. Returns the CSV path and the image folder.
pub fn synthetic_dataset(dir: &Path, n: usize, size: u32) -> (PathBuf, PathBuf) {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut csv = String::from("image,mos\n");
    let mut state = 12345u64;
    let mut rnd = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for i in 0..n {
        let noise = (i % 8) as u32 * 12;
        let img = RgbImage::from_fn(size, size, |x, y| {
            let base = (
                (x * 255 / size) as i32,
                (y * 255 / size) as i32,
                (((x + y) * 127) / size) as i32,
            );
            let mut j = |v: i32| {
                (v + (rnd() % (noise + 1)) as i32 - (noise / 2) as i32).clamp(0, 255) as u8
            };
            Rgb([j(base.0), j(base.1), j(base.2)])
        });
        let name = format!("img{i:03}.png");
        img.save(images.join(&name)).unwrap();
        csv.push_str(&format!(
            "{name},{}\n",
            90.0 - noise as f64 * 0.7 + (i % 3) as f64
        ));
    }
    let csv_path = dir.join("labels.csv");
    std::fs::write(&csv_path, csv).unwrap();
    (csv_path, images)
}

/// Minimal `torch.save` zip writer for f32 tensors (plus int64 0-dim tensors), used to make
/// torchvision-style fixture files from a VarStore: pickle protocol 2, an OrderedDict of
/// `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`, storages as
/// persistent ids `('storage', torch.FloatStorage, key, 'cpu', numel)`.
pub fn write_torch_zip(path: &Path, tensors: &[(String, Vec<usize>, TensorData)]) {
    let mut pk: Vec<u8> = vec![0x80, 2]; // PROTO 2
    push_state_dict(&mut pk, tensors);
    pk.push(b'.'); // STOP
    write_zip(path, &pk, tensors);
}

/// A checkpoint as LinearityIQA's main.py saves it: `{'model': state_dict, 'k': [..], 'b': [..]}`
/// (plus any other float lists in `lists`), in the same zip format as [`write_torch_zip`].
pub fn write_torch_checkpoint(
    path: &Path,
    model_key: &str,
    tensors: &[(String, Vec<usize>, TensorData)],
    lists: &[(&str, &[f64])],
) {
    let mut pk: Vec<u8> = vec![0x80, 2, b'}', b'(']; // PROTO 2, EMPTY_DICT, MARK
    push_unicode(&mut pk, model_key);
    push_state_dict(&mut pk, tensors);
    for (key, values) in lists {
        push_unicode(&mut pk, key);
        pk.extend_from_slice(b"](");
        for v in values.iter() {
            pk.push(b'G'); // BINFLOAT, big-endian
            pk.extend_from_slice(&v.to_be_bytes());
        }
        pk.push(b'e'); // APPENDS
    }
    pk.push(b'u'); // SETITEMS
    pk.push(b'.');
    write_zip(path, &pk, tensors);
}

fn push_unicode(pk: &mut Vec<u8>, s: &str) {
    pk.push(b'X');
    pk.extend_from_slice(&(s.len() as u32).to_le_bytes());
    pk.extend_from_slice(s.as_bytes());
}

/// Pickles an OrderedDict of tensors (storage i = tensor i).
fn push_state_dict(pk: &mut Vec<u8>, tensors: &[(String, Vec<usize>, TensorData)]) {
    let global = |pk: &mut Vec<u8>, m: &str, n: &str| {
        pk.push(b'c');
        pk.extend_from_slice(format!("{m}\n{n}\n").as_bytes());
    };
    let unicode = push_unicode;
    let int = |pk: &mut Vec<u8>, v: usize| {
        pk.push(b'J');
        pk.extend_from_slice(&(v as i32).to_le_bytes());
    };
    global(pk, "collections", "OrderedDict");
    pk.push(b')'); // EMPTY_TUPLE
    pk.push(b'R'); // REDUCE
    pk.push(b'('); // MARK for SETITEMS
    for (key, (name, shape, data)) in tensors.iter().enumerate() {
        unicode(pk, name);
        global(pk, "torch._utils", "_rebuild_tensor_v2");
        pk.push(b'(');
        // persistent id tuple
        pk.push(b'(');
        unicode(pk, "storage");
        let (st, numel) = match data {
            TensorData::F32(v) => ("FloatStorage", v.len()),
            TensorData::I64(v) => ("LongStorage", v.len()),
        };
        global(pk, "torch", st);
        unicode(pk, &key.to_string());
        unicode(pk, "cpu");
        int(pk, numel);
        pk.push(b't'); // TUPLE
        pk.push(b'Q'); // BINPERSID
        int(pk, 0);
        pk.push(b'(');
        for &d in shape {
            int(pk, d);
        }
        pk.push(b't');
        pk.push(b'(');
        let mut stride = vec![1usize; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * shape[i + 1];
        }
        for s in stride {
            int(pk, s);
        }
        pk.push(b't');
        pk.push(0x89); // NEWFALSE
        global(pk, "collections", "OrderedDict");
        pk.push(b')');
        pk.push(b'R');
        pk.push(b't'); // args tuple
        pk.push(b'R'); // call _rebuild_tensor_v2
    }
    pk.push(b'u'); // SETITEMS
}

fn write_zip(path: &Path, pk: &[u8], tensors: &[(String, Vec<usize>, TensorData)]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", opts).unwrap();
    z.write_all(pk).unwrap();
    z.start_file("archive/byteorder", opts).unwrap();
    z.write_all(b"little").unwrap();
    for (key, (_, _, data)) in tensors.iter().enumerate() {
        z.start_file(format!("archive/data/{key}"), opts).unwrap();
        // One write per tensor: a write per value takes a minute for ResNet-50's 25M values.
        let bytes: Vec<u8> = match data {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        z.write_all(&bytes).unwrap();
    }
    z.start_file("archive/version", opts).unwrap();
    z.write_all(b"3\n").unwrap();
    z.finish().unwrap();
}

pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A torch zip-format file whose `data.pkl` is the given pickle and that has no storages.
pub fn write_zip_pickle(path: &Path, pickle: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, body) in [
        ("archive/data.pkl", pickle),
        ("archive/byteorder", b"little".as_slice()),
        ("archive/version", b"3\n".as_slice()),
    ] {
        z.start_file(name, opts).unwrap();
        z.write_all(body).unwrap();
    }
    z.finish().unwrap();
}
