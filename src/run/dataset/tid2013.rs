//! TID2013 in its official layout (`mos_with_names.txt`); its own split is random by reference
//! image, seeded by `seed + exp_id` ([`ReferenceSplit`]).

use normiqa_core::data;

use super::reference_split::ReferenceSplit;

pub static TID2013: ReferenceSplit = ReferenceSplit {
    kind: "tid2013",
    name: "TID2013",
    load: |root, opts| data::tid2013::load(root, opts),
    scale: "TID2013 MOS scale, 0-9, higher is better",
    images: "512x384 images (TID2013)",
};
