//! KADID-10k in its official layout (`dmos.csv`); its own split is random by reference image,
//! seeded by `seed + exp_id` ([`ReferenceSplit`]).

use normiqa_core::data;

use super::reference_split::ReferenceSplit;

pub static KADID: ReferenceSplit = ReferenceSplit {
    kind: "kadid",
    name: "KADID-10k",
    load: |root, opts| data::kadid::load(root, opts),
    scale: "KADID-10k DMOS scale, 1-5, higher is better",
    images: "512x384 images (KADID-10k)",
};
