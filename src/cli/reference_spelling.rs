//! The reference `main.py`'s multi-letter short options (`-bs 8`, `-lr 1e-4`, `-arch resnet18`):
//! clap takes only one-letter short options and would read `-bs 8` as `-b s 8` ("invalid value
//! 's' for --batch-size"). [`check`] names the long option instead, before clap parses.
//! The reference's one-letter ones are clap options of `train` (`-e`, `-a`, `-p`, `-q`, `-g`);
//! its `-b` is `--beta`, which here is `--beta` only (`-b` is `--batch-size`).

/// (the reference's spelling, normiqa's option or what to do instead).
const SPELLINGS: &[(&str, &str)] = &[
    ("-lr", "--lr"),
    ("-bs", "--batch-size"),
    ("-flr", "--ft-lr-ratio"),
    ("-accum", "--accumulation-steps"),
    ("-wd", "--weight-decay"),
    ("-lrd", "--lr-decay"),
    ("-olrd", "--overall-lr-decay"),
    ("-optl", "--opt-level (only O0: mixed-precision training is not offered)"),
    ("-rn", "--randomness"),
    ("-valc", "--val-criterion"),
    ("-arch", "--arch"),
    ("-pl", "--pool"),
    ("-ubne", "--use-bn-end"),
    ("-P6", "--p6"),
    ("-P7", "--p7"),
    ("-lt", "--loss"),
    ("-detach", "--detach"),
    ("-monoreg", "--monotonicity-regularization"),
    ("-ds", "--dataset"),
    ("-eid", "--exp-id"),
    ("-tr", "--train-ratio"),
    ("-tvr", "--train-val-ratio"),
    ("-rs", "--resize"),
    ("-rs_h", "--resize H W"),
    ("-rs_w", "--resize H W"),
    ("-augment", "--augment"),
    ("-ag", "--angle"),
    ("-cs_h", "--crop H W"),
    ("-cs_w", "--crop H W"),
    ("-hp", "--hflip"),
    ("-logd", "--out (the run folder holds log.jsonl; `normiqa report --tensorboard` writes TensorBoard events)"),
    ("-tdt", "--test-during-training"),
    ("-eval", "`normiqa test --model RUN` (evaluation is its own command)"),
    ("-debug", "--debug"),
    ("-pbar", "nothing (a progress bar is drawn on a terminal)"),
];

/// The message for the first argument of `normiqa train ...` spelled as a multi-letter short
/// option of the reference, if any (arguments after `--` are left alone).
pub fn check<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Option<String> {
    let args: Vec<&str> = args.iter().filter_map(|a| a.as_ref().to_str()).collect();
    if args.get(1) != Some(&"train") {
        return None;
    }
    let used = args.iter().skip(2).take_while(|a| **a != "--");
    for a in used {
        let (name, value) = a.split_once('=').unwrap_or((a, ""));
        if let Some((r, ours)) = SPELLINGS.iter().find(|(r, _)| *r == name) {
            let with = if value.is_empty() { String::new() } else { format!(" (with {value})") };
            return Some(format!(
                "{r}{with}: the reference main.py's short option; normiqa train spells it {ours} (only one-letter short options exist here)"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn reference_short_options_name_the_long_one() {
        let m = check(&["normiqa", "train", "--dataset", "clive", "-bs", "8"]).unwrap();
        assert!(m.starts_with("-bs: ") && m.contains("--batch-size"), "{m}");
        let m = check(&["normiqa", "train", "-lr=1e-3"]).unwrap();
        assert!(m.contains("--lr") && m.contains("1e-3"), "{m}");
        assert!(check(&["normiqa", "train", "-e", "3", "-b", "8", "-p", "2"]).is_none());
        assert!(check(&["normiqa", "predict", "-bs"]).is_none(), "train only");
        assert!(check(&["normiqa", "train", "--", "-bs"]).is_none());
    }
}
