"""torch.distributed on CPU (gloo, 2 processes): sharded HVPs, eigenvalues and landscape
grids equal the single-process answers; DDP training equals one process with the same
global batch; a dead rank makes the others fail instead of hanging."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import torch

WORKER = textwrap.dedent("""
    import os, sys, datetime, json
    import numpy as np, torch, torch.distributed as dist, torch.nn.functional as F
    sys.path.insert(0, {tests!r})
    torch.set_num_threads(1)
    from conftest import tiny_vit, batch
    from vitprobe import hessian, landscape
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    out = sys.argv[1]
    task = sys.argv[2]
    if task == "hang":  # the project's own path: VITPROBE_DIST_TIMEOUT sets the timeout
        from vitprobe.studies.cli import init_distributed
        init_distributed("cpu")
    else:
        # timm first, as studies.cli.init_distributed does: imported after joining, timm's
        # imports (torch.distributed.nn: group=group.WORLD default arguments) would keep the
        # group, and gloo's threads would run on past destroy_process_group into the exit
        import timm  # noqa: F401
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=float(
            os.environ.get("TIMEOUT", "60"))))
    torch.manual_seed(0)
    model = tiny_vit().double().eval()
    x, y = batch(12)
    shard = (x[rank::world], y[rank::world])
    g = dist.group.WORLD
    if task == "die" and rank == 1:
        os._exit(3)
    if task == "hang":
        import time
        if rank == 1:
            time.sleep(120)  # alive but silent: only the timeout can end rank 0's wait
        v = {{n: torch.ones_like(p) for n, p in model.named_parameters()}}
        hessian.hvp(model, F.cross_entropy, shard, v, group=g)
    if task in ("probe", "die"):
        v = {{n: torch.ones_like(p) for n, p in model.named_parameters()}}
        hv = hessian.hvp(model, F.cross_entropy, shard, v, group=g)
        r = hessian.top_eigenvalues(model, F.cross_entropy, shard, k=5, tol=1e-8, group=g)
        d = (landscape.random_direction(model, seed=0), landscape.random_direction(model, seed=1))
        s = landscape.surface(model, F.cross_entropy, (x, y), d, steps=(3, 4), group=g)
        if rank == 0:
            torch.save({{"hv": hv, "eig": torch.tensor(r.eigenvalues),
                        "grid": torch.tensor(s.loss)}}, out)
    if task == "train":
        from vitprobe.data import Augment, Loader, load
        from vitprobe.train import Recipe
        from vitprobe.train import TrainConfig, fit
        from test_train import small_vit
        model = small_vit()
        train = Loader(load("synthetic", "train"), 32, shuffle=True, augment=Augment(2, False),
                       seed=0, drop_last=True, rank=rank, world_size=world)
        fit(model, train, None, TrainConfig(Recipe(epochs=1, batch_size=32, lr=1e-3),
                                            amp=False, progress=False))
        if rank == 0:
            torch.save(model.state_dict(), out)
    del g  # a reference to the group would keep it, and its threads, past its destruction
    dist.barrier()  # no rank tears its transport down while a peer still talks to it
    dist.destroy_process_group()
    left = [n for n in os.listdir("/proc/self/task")
            if "gloo" in open(f"/proc/self/task/{{n}}/comm").read()]
    if left:  # the group outlived its destruction: its threads would meet the exit
        sys.exit(f"rank {{rank}}: {{len(left)}} gloo threads left after destroy_process_group")
""")


def launch(tmp_path, nproc, task, timeout_env="60", **extra_env):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=os.path.dirname(__file__)))
    out = tmp_path / f"{task}-{nproc}.pt"
    # a rank that aborts (SIGABRT, SIGSEGV) prints its Python stacks into stderr
    env = {**os.environ, "TIMEOUT": timeout_env, "OMP_NUM_THREADS": "1",
           "PYTHONFAULTHANDLER": "1", **extra_env}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        f"--nproc_per_node={nproc}", str(script), str(out), task],
                       capture_output=True, text=True, env=env, timeout=300)
    return r, out


def test_two_process_hvp_eigenvalues_and_landscape_equal_one_process(tmp_path):
    r1, o1 = launch(tmp_path, 1, "probe")
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2, o2 = launch(tmp_path, 2, "probe")
    assert r2.returncode == 0, r2.stderr[-6000:]
    a, b = torch.load(o1), torch.load(o2)
    for k in a["hv"]:
        assert (a["hv"][k] - b["hv"][k]).norm() <= 1e-6 * a["hv"][k].norm() + 1e-15, k
    np.testing.assert_allclose(b["eig"], a["eig"], rtol=1e-6)
    np.testing.assert_allclose(b["grid"], a["grid"], rtol=1e-12)


def test_two_process_ddp_training_equals_one_process_with_the_same_global_batch(tmp_path):
    r1, o1 = launch(tmp_path, 1, "train")
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2, o2 = launch(tmp_path, 2, "train")
    assert r2.returncode == 0, r2.stderr[-3000:]
    a, b = torch.load(o1), torch.load(o2)
    for k in a:
        # float32 sums in another order: differences at round-off, far below one step
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=2e-6)


def test_a_dead_rank_makes_the_other_fail_instead_of_hanging(tmp_path):
    r, _ = launch(tmp_path, 2, "die", timeout_env="20")
    assert r.returncode != 0


def test_a_silent_rank_times_out_after_vitprobe_dist_timeout(tmp_path):
    """Rank 1 stays alive but never joins the all-reduce; rank 0, joined through
    vitprobe.studies.cli.init_distributed with VITPROBE_DIST_TIMEOUT=10, gives up after ~10 s
    (not the 120 s rank 1 sleeps, nor the default 600 s) and the job fails."""
    import time

    t = time.monotonic()
    r, _ = launch(tmp_path, 2, "hang", VITPROBE_DIST_TIMEOUT="10")
    elapsed = time.monotonic() - t
    assert r.returncode != 0
    assert elapsed < 90, elapsed
    assert "timeout" in r.stderr.lower() or "timed out" in r.stderr.lower(), r.stderr[-2000:]


def test_hessian_study_runs_under_torchrun_and_agrees_with_one_process(tmp_path):
    import json

    common = ["--model", "vit-ti", "--preset", "smoke", "--data", "synthetic", "--model-args",
              "embed_dim=32,heads=2,depth=2", "--runs-dir", str(tmp_path / "runs"),
              "--num-batches", "2", "--k", "3", "--tol", "1e-6", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "studies.hessian", *common, "--out",
                          str(tmp_path / "one")], capture_output=True, text=True, env=env,
                         timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", "-m", "studies.hessian", *common, "--out",
                          str(tmp_path / "two")], capture_output=True, text=True, env=env,
                         timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]

    def eig(d):
        rec = json.loads((tmp_path / d / "hessian.json").read_text())
        spectra = rec["results"]["models"]["vit-ti [smoke]"]["spectra"]
        return np.array(spectra["final"]["eigenvalues"])

    np.testing.assert_allclose(eig("two"), eig("one"), rtol=1e-4)
    assert json.loads((tmp_path / "two" / "hessian.json").read_text())["config"]["world_size"] == 2
