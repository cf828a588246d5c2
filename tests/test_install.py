"""`pip install .` in a clean venv, without make: the wheel holds one top-level package,
vitprobe (models and studies inside it, as vitprobe.models and vitprobe.studies), so a user's
own models/ or studies/ folder cannot shadow ours; installed, the API, the console command and
a study run from any folder, with the checkout's code identities."""

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_pip_install_in_a_clean_venv_under_one_namespace_no_user_folder_can_shadow(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(dist)], check=True, timeout=300)
    wheel = next(dist.glob("vitprobe-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == \
        {"vitprobe"}
    for f in ("vitprobe/models/vit.py", "vitprobe/studies/hessian.py",
              "vitprobe/train/loop.py", "vitprobe/solvers/lanczos.py"):
        assert f in names, f
    # `pip install .` into a clean venv (no make, nothing of this interpreter's): the
    # dependencies resolve from the machine's package index, as `make setup`'s do
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    try:
        _check_the_install(tmp_path, python)
    finally:  # torch and its CUDA libraries: ~6 GB
        shutil.rmtree(env_dir, ignore_errors=True)


def _check_the_install(tmp_path, python):
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(ROOT)], check=True,
                   timeout=900, cwd=tmp_path)  # not the checkout: it must not be importable
    site = next(python.parent.parent.glob("lib/python*/site-packages"))
    user = tmp_path / "my-project"  # a user's folder with its own models/ and studies/
    for pkg in ("models", "studies"):
        (user / pkg).mkdir(parents=True)
        (user / pkg / "__init__.py").write_text("raise ImportError('the user's own')\n")
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
           "VITPROBE_CACHE": str(tmp_path / "cache")}
    code = (
        "import torch, torch.nn.functional as F, vitprobe\n"
        "from vitprobe.models import create_model\n"
        "from vitprobe import hessian\n"
        f"assert vitprobe.__file__.startswith({str(site)!r}), vitprobe.__file__\n"
        "torch.manual_seed(0)\n"
        "m = create_model('vit-ti', num_classes=4, in_chans=1, img_size=28, patch_size=7, "
        "depth=1)\n"
        "x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 4, (8,))\n"
        "r = hessian.top_eigenvalues(m, F.cross_entropy, (x, y), k=2)\n"
        "print('converged', r.converged.tolist())\n"
        "from vitprobe import identity as i\n"
        "print('code', i.digest(i.TRAINING_MODULES), i.digest(i.PROBE_MODULES))\n")
    r = subprocess.run([str(python), "-c", code], cwd=user, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "converged [True, True]" in r.stdout, r.stderr[-2000:]
    # the code identities follow the code, not where it lies: installed = checkout (the
    # libraries' versions, also in the identities, are the clean venv's own)
    from vitprobe import identity as i

    assert f"code {i.digest(i.TRAINING_MODULES)} {i.digest(i.PROBE_MODULES)}" in r.stdout, \
        r.stdout
    exe = python.parent / "vitprobe"
    for argv, needle in ((["--version"], "vitprobe 0."), (["models"], "vit-ti"),
                         (["hessian", "--help"], "usage: vitprobe hessian")):
        r = subprocess.run([str(exe), *argv], cwd=user, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0 and needle in r.stdout, (argv, r.stderr[-2000:])
    r = subprocess.run([str(exe), "train", "--model", "vit-ti", "--preset", "smoke", "--data",
                        "synthetic", "--runs-dir", "runs", "--out", "out", "--quiet"],
                       cwd=user, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "test accuracy" in r.stdout, r.stderr[-2000:]
