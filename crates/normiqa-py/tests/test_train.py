"""normiqa.train / run from Python on the bundled CLIVE sample: frozen pretrained Lite0,
cached features, one epoch (seconds)."""

import csv
import os

import pytest

import normiqa
from normiqa import data


def tiny(sample, **extra):
    cfg = {
        "data": {"dataset": {"kind": "clive", "root": str(sample)}, "exp_id": 0},
        "model": {"backbone": "efficientnet-lite0"},
        "ft_lr_ratio": 0.0,
        "epochs": 1,
        "device": "cpu",
    }
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="module", autouse=True)
def feature_cache(tmp_path_factory):
    """One feature cache for the module: the sample's Lite0 features are computed once."""
    old = os.environ.get("NORMIQA_FEATURE_CACHE")
    os.environ["NORMIQA_FEATURE_CACHE"] = str(tmp_path_factory.mktemp("features"))
    yield
    if old is None:
        del os.environ["NORMIQA_FEATURE_CACHE"]
    else:
        os.environ["NORMIQA_FEATURE_CACHE"] = old


def test_train_from_a_dict_reports_progress_and_returns_the_run(sample, tmp_path):
    lines = []
    r = normiqa.train(tiny(sample), out=tmp_path / "run", progress=lambda level, msg: lines.append((level, msg)))
    assert r["dir"] == tmp_path / "run" and not r["already_finished"]
    test = r["run"]["test"]
    assert len(test) == len(r["run"]["heads"]) and all(-1 <= m["srocc"] <= 1 for m in test)
    assert any("epoch" in msg.lower() for _, msg in lines), lines
    # the run folder is a model: score with it
    m = normiqa.Model.load(r["dir"])
    assert isinstance(m.score(next((sample / "images").iterdir()), precision="fp32"), float)
    m.close()
    # the loaders give the split the run used: its test predictions list the test images
    with open(r["dir"] / "predictions_test.csv", newline="") as f:
        tested = [row["image"] for row in csv.DictReader(f)]
    assert sorted(tested) == sorted(data.clive(sample, exp_id=0).test.names)


def test_train_from_a_toml_file_and_again_finds_it_finished(sample, tmp_path):
    toml = tmp_path / "config.toml"
    toml.write_text(
        f'ft_lr_ratio = 0.0\nepochs = 1\ndevice = "cpu"\n[data]\nexp_id = 1\n'
        f'[data.dataset]\nkind = "clive"\nroot = "{sample}"\n'
    )
    first = normiqa.train(toml, out=tmp_path / "run")
    again = normiqa.train(toml, out=tmp_path / "run")
    assert not first["already_finished"] and again["already_finished"]
    assert again["run"]["test"] == first["run"]["test"]


def test_unknown_config_keys_are_refused_naming_them(sample, tmp_path):
    with pytest.raises(normiqa.NormiqaError, match="unknown configuration key 'epoch'"):
        normiqa.train(tiny(sample, epoch=3), out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_callback_exception_is_raised_when_the_run_ends(sample, tmp_path):
    def fail(level, msg):
        raise KeyError("stop")

    with pytest.raises(KeyError, match="stop"):
        normiqa.train(tiny(sample), out=tmp_path / "run", progress=fail)


def test_run_an_experiment_sweep_returns_every_run(sample, tmp_path):
    exp = tiny(sample)
    exp["experiment"] = {"name": "sweep"}
    exp["sweep"] = {"lr": [1e-4, 1e-3]}
    r = normiqa.run(exp, out=tmp_path / "runs")
    assert r["dir"] == tmp_path / "runs" / "sweep"
    assert len(r["runs"]) == 2 and all(v["test"] for v in r["runs"].values())
