"""The seed is the replication unit of the findings: it must reach every random draw behind
them — the training run, the spectra's mini-batches, the probe images and the noise."""

import sys

import pytest
import torch

from vitprobe import fourier
from vitprobe.studies.probes import probe_indices
from vitprobe.studies.protocols import spectrum_loader
from vitprobe.studies.runspec import RunSpec


def _spec(seed: int) -> RunSpec:
    return RunSpec(model="vit-mini", data="synthetic", preset="small", seed=seed)


def test_two_seeds_give_different_runs_and_spectrum_mini_batches():
    a, b = _spec(0), _spec(1)
    assert a.run_dir != b.run_dir and a.run_name.endswith("-small-s0")
    xa, ya = next(spectrum_loader(a, 16, clean=False).iterate(0))
    xb, yb = next(spectrum_loader(b, 16, clean=False).iterate(0))
    assert xa.shape == xb.shape == (16, *xa.shape[1:])
    assert not torch.equal(xa, xb)
    # the same seed gives the same mini-batches (a rerun measures the same spectrum)
    xa2, _ = next(spectrum_loader(_spec(0), 16, clean=False).iterate(0))
    assert torch.equal(xa, xa2)


def test_two_seeds_probe_different_images_and_draw_different_noise():
    assert not torch.equal(probe_indices(1000, 64, 0), probe_indices(1000, 64, 1))
    assert torch.equal(probe_indices(1000, 64, 2), probe_indices(1000, 64, 2))

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.seen = []

        def forward(self, x):
            self.seen.append(x.clone())
            return torch.zeros(len(x), 10)

    x, y = torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)
    noisy = []
    for seed in (0, 1, 0):
        m = Recorder()
        fourier.noise_robustness(m, (x, y), [0.5 * torch.pi], eps=1.0, seed=seed)
        noisy.append(m.seen[1])  # seen[0]: the clean batch
    assert not torch.equal(noisy[0], noisy[1]) and torch.equal(noisy[0], noisy[2])
    assert noisy[0].abs().sum() > 0


def test_a_sitting_starts_only_the_models_whose_measured_time_fits(tmp_path):
    """Two workers, 150 minutes: 60 + 60 start at once, 61 (60 -> 121) and 25 (60 -> 85)
    fit, 70 does not (the first free worker frees at 85, 85 + 70 > 150); an unknown time
    starts. The estimate is the median of the model's other seeds' records."""
    import json

    from vitprobe.studies import seeds

    assert seeds.fitting([60, 60, 61, 25, 70, None], 2, 150) == [True, True, True, True,
                                                                False, True]
    spec = seeds.training_specs("small", 3)[0]
    assert seeds.measured_minutes(tmp_path, spec) is None
    for k, minutes in ((0, 61.0), (1, 70.0), (2, 40.0)):
        folder = seeds.record_dir(tmp_path, seeds.replace(spec, seed=k))
        folder.mkdir(parents=True)
        (folder / "record.json").write_text(json.dumps({"train_minutes": minutes}))
    assert seeds.measured_minutes(tmp_path, spec) == 61.0


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_killed_seeds_run_leaves_no_training_running(tmp_path, how):
    """A worker started as ``vitprobe seeds`` starts its trainings (spawn pool, the same
    initializer) outlives neither a SIGKILL nor a SIGTERM of its parent."""
    import signal
    import subprocess
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "from vitprobe.studies.seeds import worker_pool\n"
        "def work(path):\n"
        "    open(path, 'w').write(str(os.getpid()))\n"
        "    time.sleep(120)\n"
        "if __name__ == '__main__':\n"
        "    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))\n"
        "    with worker_pool(1) as pool:\n"
        "        pool.apply_async(work, (sys.argv[1],)).get()\n")
    pidfile = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, str(script), str(pidfile)])
    try:
        deadline = time.monotonic() + 120
        while not (pidfile.is_file() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        worker = int(pidfile.read_text())
        assert _alive(worker)
        parent.send_signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGTERM)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), f"worker {worker} still running after the parent's {how}"
    finally:
        parent.kill()


def test_a_seeds_pool_ends_when_its_trainings_end(tmp_path):
    """The pool's exit after its last result: a worker replaced after its one training idles
    until then (started by the pool's helper thread, which ends on exit); it must not die
    holding the task-queue lock, which hung the pool's exit for ever."""
    import subprocess

    script = tmp_path / "parent.py"
    script.write_text(
        "import time\n"
        "from vitprobe.studies.seeds import worker_pool\n"
        "def work(s):\n"
        "    time.sleep(s)\n"
        "    return s\n"
        "if __name__ == '__main__':\n"
        "    with worker_pool(2) as pool:\n"
        "        assert [j.get() for j in [pool.apply_async(work, (s,)) for s in (0.5, 4)]]"
        " == [0.5, 4]\n"
        "    print('ended')\n")
    try:
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the pool's exit hung after its trainings ended")
    assert done.returncode == 0 and done.stdout.strip() == "ended", done.stderr

