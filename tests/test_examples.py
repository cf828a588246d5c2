"""The examples/ scripts run as a user runs them, on tiny settings, and print what they say."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(script, *args, tmp_path):
    env = {**os.environ, "VITPROBE_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_own_model_probes_a_torchvision_vit_a_timm_convnext_and_a_plain_cnn(tmp_path):
    out = run("own_model.py", tmp_path=tmp_path)
    for name in ("torchvision ViT", "timm ConvNeXt", "plain CNN"):
        line = next(ln for ln in out.splitlines() if ln.startswith(name + ":"))
        assert "converged [True, True]" in line and "variance per tap" in line, line


def test_own_data_trains_and_probes_an_image_folder(tmp_path):
    out = run("own_data.py", "--out", str(tmp_path / "o"), tmp_path=tmp_path)
    assert "test accuracy: {'resnet-18':" in out
    assert "--data imagefolder --data-dir" in out  # the shell command, every path in it
    assert "resnet-18: ΔlogAmp at the highest frequency per tap" in out


@pytest.mark.parametrize("script, args, needle", [
    ("gap_vs_cls.py", ("--runs-dir", "runs"), "vit-ti (gap): NEP"),
    ("gpu_run.py", ("--depth", "1"), "vit-ti on cpu (CPU): top-5"),
])
def test_gap_vs_cls_and_the_gpu_run_print_their_results(script, args, needle, tmp_path):
    assert needle in run(script, *args, tmp_path=tmp_path)
