"""Typed study configs: the command line is generated from the fields, the API refuses what
the CLI refuses, a config turns back into the command that reproduces it, and a result saved
by a study loads back into the same typed values."""

import subprocess
import sys

import numpy as np
import pytest

from vitprobe.spectra import Spectrum
from vitprobe.studies import reproduce
from vitprobe.studies.config import StudyConfig
from vitprobe.studies.hessian import HessianConfig, HessianResult
from vitprobe.studies.subsets import SubsetsConfig, SubsetsResult

# every study the CLI runs, with its config type
CONFIGS = [kind for kind, _ in reproduce.STUDIES.values()] + [reproduce.ReproduceConfig]


def test_every_option_has_help_and_every_config_field_is_an_option():
    import dataclasses

    for kind in CONFIGS:
        parser = kind.parser()
        dests = {a.dest for a in parser._actions if a.dest != "help"}
        assert dests == {f.name for f in dataclasses.fields(kind)}, kind
        for action in parser._actions:
            assert action.help, (kind.STUDY, action.dest)


def test_the_command_line_and_the_api_build_the_same_config(tmp_path):
    argv = ["--model", "vit-ti,resnet-18", "--k", "3", "--tol", "0.01", "--per-block",
            "--out", str(tmp_path)]
    from_cli = HessianConfig.parse(argv)
    from_api = HessianConfig(model="vit-ti,resnet-18", k=3, tol=0.01, per_block=True,
                             out=str(tmp_path))
    assert from_cli == from_api
    # back to the command: the options given, and every path (runs folder included)
    assert from_api.argv() == ["--model", "vit-ti,resnet-18", "--out", str(tmp_path),
                               "--runs-dir", "runs", "--k", "3", "--tol", "0.01",
                               "--per-block"]
    assert HessianConfig.parse(from_api.argv()) == from_api
    assert from_api.command().startswith("vitprobe hessian --model vit-ti,resnet-18")


@pytest.mark.parametrize("kind, changes, needle", [
    (HessianConfig, {"tol": 2.0}, "--tol: 2 is not allowed: it must be in (0, 1)"),
    (HessianConfig, {"tol": 1.0}, "--tol: 1 is not allowed: it must be in (0, 1)"),
    (HessianConfig, {"weight_decay": -1.0}, "--weight-decay: -1 is not allowed"),
    (HessianConfig, {"mode": "sometimes"}, "--mode 'sometimes' is not allowed; allowed: eval"),
    (HessianConfig, {"at_epochs": "1,x"}, "--at-epochs: '1,x' is not allowed: it must be "
                                          "comma-separated epochs"),
    (StudyConfig, {"device": "gpu"}, "unknown device 'gpu'; allowed: cpu, cuda, cuda:N"),
    (StudyConfig, {"pool": "max"}, "invalid pooling 'max'; allowed: cls, gap, seqpool, map"),
    (StudyConfig, {"data_fraction": 0.0}, "--data-fraction: 0 is not allowed"),
    (SubsetsConfig, {"fractions": "0.5,2"}, "--fractions: '0.5,2' is not allowed: it must be "
                                            "comma-separated numbers"),
])
def test_the_api_refuses_what_the_cli_refuses(kind, changes, needle, tmp_path):
    with pytest.raises(ValueError) as e:
        kind(**changes)
    assert needle in str(e.value)
    flag, value = next(iter(changes.items()))
    r = subprocess.run([sys.executable, "-m", f"studies.{kind.STUDY or 'hessian'}",
                        "--" + flag.replace("_", "-"), str(value)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_pooling_refuses_one_pool_and_names_its_own_option():
    from vitprobe.studies.pooling import PoolingConfig

    with pytest.raises(ValueError, match="use --pools, e.g. --pools cls,gap"):
        PoolingConfig(pool="gap")
    assert PoolingConfig(pools="cls,gap").pools == "cls,gap"


def test_a_saved_result_loads_back_into_the_same_typed_values(tmp_path):
    s = Spectrum(np.array([[3.0, -1.0], [2.0, np.nan]]), np.array([[1e-4, 2e-4], [1e-4, 1.0]]),
                 np.array([[True, True], [True, False]]), 17, 1.5, 16, 5e-5)
    config = HessianConfig(out=str(tmp_path), seed=4)
    HessianResult(record={"models": {"vit-ti": {"run": {}, "spectra": {"final": s.to_dict()}}}},
                  config=config.to_dict()).save(tmp_path)
    back = HessianResult.load(tmp_path)
    assert back.config["seed"] == 4 and back.labels == ["vit-ti"]
    got = back.spectrum("vit-ti")
    np.testing.assert_array_equal(got.eigenvalues, s.eigenvalues)  # NaN survives as NaN
    np.testing.assert_array_equal(got.converged, s.converged)
    assert (got.num_hvps, got.batch_size, got.weight_decay) == (17, 16, 5e-5)
    assert got.nep() == pytest.approx(1 / 3) and got.ape() == pytest.approx(2.5)

    rows = [{"model": "vit-ti", "fraction": f, "train_nll_per_image": [f, 3 * f],
             "test_acc": 0.5 + f / 4, "steps": 100} for f in (1.0, 0.06)]
    rows[1].update(spectrum=s.to_dict(), early_epoch=20, early_spectrum=s.to_dict())
    SubsetsResult(record=rows, config=SubsetsConfig(out=str(tmp_path)).to_dict()).save(tmp_path)
    runs = SubsetsResult.load(tmp_path).runs()["vit-ti"]
    assert [r.fraction for r in runs] == [0.06, 1.0]  # ascending
    assert runs[0].train_nll == pytest.approx(0.12) and runs[1].test_acc == 0.75
    np.testing.assert_array_equal(runs[0].early_eigenvalues, s.eigenvalues)
    assert runs[1].eigenvalues is None and runs[1].early_eigenvalues is None
    with pytest.raises(ValueError, match="--early adds spectra at the early checkpoint"):
        SubsetsConfig(hessian_models="none", early=True)


def test_a_result_reads_the_same_fresh_from_run_and_loaded_from_its_file(tmp_path):
    """A study's record holds the probe's own objects (FourierTap dataclasses) and smoke-marked
    labels; the typed accessors read them as the saved file gives them."""
    import torch

    from vitprobe import fourier
    from vitprobe.models import create_model
    from vitprobe.studies.fourier import FourierResult

    torch.manual_seed(0)
    model = create_model("vit-ti", num_classes=4, in_chans=1, img_size=28, patch_size=7,
                         depth=2).eval()
    taps = fourier.profile(model, torch.randn(4, 1, 28, 28))
    fresh = FourierResult(record={"vit-ti [smoke]": {"taps": taps}}, config={"seed": 0})
    fresh.save(tmp_path)
    loaded = FourierResult.load(tmp_path)
    a, b = fresh.profiles()["vit-ti"], loaded.profiles()["vit-ti"]
    assert a.kinds == b.kinds == [t.kind for t in taps]
    np.testing.assert_array_equal(a.per_image, b.per_image)
    assert fresh.token_grid_side("vit-ti") == loaded.token_grid_side("vit-ti") == 4


def test_an_option_a_study_cannot_use_is_refused_not_ignored(tmp_path):
    """Each case once silently did nothing (or loaded one checkpoint into every model)."""
    from vitprobe.studies.alternet import AlterNetConfig
    from vitprobe.studies.landscape import LandscapeConfig
    from vitprobe.studies.pooling import PoolingConfig
    from vitprobe.studies.zoo import ZooConfig

    ckpt = tmp_path / "w.safetensors"
    ckpt.write_bytes(b"x")
    for build, needle in (
            (lambda: HessianConfig(model="vit-ti,resnet-18", checkpoint=str(ckpt)),
             "--checkpoint holds the weights of one model; --model/--pool ask for 2"),
            (lambda: HessianConfig(model="vit-ti", pool="cls,gap", checkpoint=str(ckpt)),
             "ask for 2 (vit-ti@cls, vit-ti@gap)"),
            (lambda: PoolingConfig(pools="cls,gap", checkpoint=str(ckpt)),
             "--checkpoint is not used by vitprobe pooling: each pooling is its own"),
            (lambda: SubsetsConfig(data_fraction=0.5),
             "--data-fraction is not used by vitprobe subsets: the fractions are --fractions"),
            (lambda: AlterNetConfig(search=True, model="vit-ti"),
             "--model is not used by vitprobe alternet: the search builds its candidates"),
            (lambda: AlterNetConfig(first_stage=1),
             "--first-stage is not used by vitprobe alternet: --base and --first-stage are"),
            (lambda: LandscapeConfig(trajectory=True, checkpoint=str(ckpt)),
             "--checkpoint is not used by vitprobe landscape: --trajectory reads"),
            (lambda: ZooConfig(checkpoint=str(ckpt)), "--checkpoint is not used by vitprobe zoo")):
        with pytest.raises(ValueError) as e:
            build()
        assert needle in str(e.value), (needle, str(e.value))
    assert HessianConfig(model="vit-ti", checkpoint=str(ckpt)).checkpoint == str(ckpt)
    assert AlterNetConfig(search=True, base="alternet-18", first_stage=1).first_stage == 1
