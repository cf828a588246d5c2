"""The training cache under faults a user meets: bit flips in checkpoints, two processes
training the same run, a run that fails beside another's folder, killed writes' temp files, a
full disk during a checkpoint write, names that would leave the runs folder."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from vitprobe import results
from vitprobe.studies import cache
from vitprobe.studies.runspec import RunSpec


def spec(tmp_path, **kw):
    return RunSpec(model="vit-ti", data="synthetic", preset="smoke", runs_dir=str(tmp_path),
                   progress=False, **kw)


def flip(path: Path, offset_from_end: int = 64, n: int = 8) -> None:
    """Flip ``n`` bytes inside the file's data (counted from its end: the tensors)."""
    blob = bytearray(path.read_bytes())
    for i in range(n):
        blob[-offset_from_end + i] ^= 0xFF
    path.write_bytes(bytes(blob))


def test_weights_and_state_carry_a_checksum_that_a_bit_flip_breaks(tmp_path):
    w = {"a": torch.arange(64, dtype=torch.float32), "b": torch.ones(3, 3)}
    p = results.save_weights(tmp_path / "w.safetensors", w)
    assert all(torch.equal(results.load_weights(p)[k], w[k]) for k in w)
    flip(p)
    with pytest.raises(results.CorruptCheckpoint, match="w.safetensors is corrupt"):
        results.load_weights(p)
    # a safetensors file without our checksum (anyone's) is read as it is
    from safetensors.torch import save_file

    save_file(w, str(tmp_path / "theirs.safetensors"))
    assert torch.equal(results.load_weights(tmp_path / "theirs.safetensors")["a"], w["a"])
    s = results.save_state(tmp_path / "state.pt", {"step": 3, "w": w["a"]})
    assert results.load_state(s)["step"] == 3
    flip(s)
    with pytest.raises(results.CorruptCheckpoint, match="state.pt is corrupt"):
        results.load_state(s)


def test_a_flipped_final_model_is_set_aside_and_rebuilt_from_the_last_good_checkpoint(
        tmp_path, caplog):
    sp = spec(tmp_path)
    model, _ = cache.trained_model(sp)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    final = sp.run_dir / "model.safetensors"
    flip(final)
    again, _ = cache.trained_model(sp)
    assert "is corrupt" in caplog.text and (sp.run_dir / "model.safetensors.corrupt").is_file()
    assert all(torch.equal(again.state_dict()[k], good[k]) for k in good)  # bit-equal
    assert results.load_weights(final)  # rewritten, checksum intact


def test_a_run_that_fails_never_removes_a_folder_it_did_not_create(tmp_path, monkeypatch):
    sp = spec(tmp_path)
    sp.run_dir.mkdir(parents=True)
    other = sp.run_dir / "init.safetensors"  # another process's files, no checkpoint yet
    results.save_weights(other, {"x": torch.zeros(1)})

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.trained_model(sp)
    assert other.is_file()
    # a folder this call created is removed when nothing in it can be resumed
    sp2 = spec(tmp_path, seed=1)
    with pytest.raises(KeyboardInterrupt):
        cache.trained_model(sp2)
    assert not sp2.run_dir.exists()


def test_a_run_with_checkpoints_but_no_config_is_refused(tmp_path):
    sp = spec(tmp_path)
    cache.trained_model(sp)
    (sp.run_dir / "config.json").unlink()
    with pytest.raises(ValueError, match="but no config.json"):
        cache.trained_model(sp)


def test_temp_files_of_killed_writes_are_removed_by_the_next_run(tmp_path):
    sp = spec(tmp_path)
    cache.trained_model(sp)
    stale = sp.run_dir / ".state.pt.k7xq2m"
    stale.write_bytes(b"x" * 1000)
    cache.trained_model(sp)
    assert not stale.exists() and (sp.run_dir / "model.safetensors").is_file()


def test_a_second_process_waits_for_the_lock_then_reads_the_same_model(tmp_path, caplog):
    sp = spec(tmp_path)
    holder = threading.Event()
    release = threading.Event()

    def hold():
        with cache.run_lock(sp.run_dir):
            holder.set()
            release.wait(120)

    t = threading.Thread(target=hold)
    t.start()
    holder.wait(10)
    out = {}
    reader = threading.Thread(target=lambda: out.update(m=cache.trained_model(sp)[0]))
    with caplog.at_level("WARNING"):
        reader.start()
        # on a loaded machine the reader may take seconds to reach the lock: wait for its
        # message rather than a fixed time, then check it is blocked with nothing written
        deadline = time.monotonic() + 100
        while "waiting for it to finish" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "waiting for it to finish" in caplog.text
        assert reader.is_alive()  # blocked on the lock: nothing written meanwhile
        assert not (sp.run_dir / "config.json").exists()
        release.set()
        reader.join(120)
        t.join()
    assert "m" in out


def test_no_wait_refuses_a_run_another_process_holds_in_one_line(tmp_path):
    sp = spec(tmp_path)
    with cache.run_lock(sp.run_dir):
        r = subprocess.run([sys.executable, "-m", "studies.train", "--model", "vit-ti",
                            "--preset", "smoke", "--data", "synthetic", "--runs-dir",
                            str(tmp_path), "--out", str(tmp_path / "o"), "--no-wait"],
                           capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"another process is training or reading {sp.run_dir}" in r.stderr
    assert "without --no-wait" in r.stderr
    assert not (sp.run_dir / "config.json").exists()  # nothing written


def test_two_processes_training_one_run_end_with_one_valid_checkpoint(tmp_path):
    args = [sys.executable, "-m", "studies.train", "--model", "vit-ti", "--preset", "smoke",
            "--data", "synthetic", "--runs-dir", str(tmp_path), "--out", str(tmp_path / "o"),
            "--quiet"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    (run_dir,) = [d for d in (tmp_path / "synthetic").iterdir() if d.is_dir()]
    results.load_weights(run_dir / "model.safetensors")
    # one of them trained, the other waited and read the cached model
    assert sum("waiting for it to finish" in err for _, err in outs) <= 1
    metrics = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == len({json.loads(m)["epoch"] for m in metrics})  # no epoch twice


@pytest.mark.parametrize("kw, needle", [
    ({"overrides": {"qkv_bias": "../../../../escaped"}}, "model argument qkv_bias="),
    ({"overrides": {"depth": "2;rm x"}}, "model argument depth="),
    ({"teacher": "../../x"}, "unknown teacher '../../x'"),
    ({"teacher": "vit-ti;rm x"}, "unknown teacher"),
    ({"pool": "../gap"}, "unknown pooling '../gap'"),
])
def test_names_that_reach_a_path_are_refused_before_anything_is_written(tmp_path, kw, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        spec(tmp_path / "runs", **kw)
    assert not (tmp_path / "runs").exists()


def test_an_escaping_model_argument_is_one_line_on_the_command_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "studies.train", "--model", "vit-ti",
                        "--preset", "smoke", "--data", "synthetic", "--runs-dir",
                        str(tmp_path / "r2"), "--model-args", "qkv_bias=../../escaped"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "model argument qkv_bias=" in r.stderr
    assert not any(tmp_path.parent.glob("escaped*")) and not (tmp_path / "r2").exists()


def test_a_flipped_checkpoint_given_on_the_command_line_is_one_line(tmp_path):
    from vitprobe.models import create_model

    m = create_model("resnet-18", num_classes=10, in_chans=1, img_size=28)
    p = results.save_weights(tmp_path / "mine.safetensors", m.state_dict())
    flip(p, offset_from_end=4096)
    r = subprocess.run([sys.executable, "-m", "studies.train", "--model", "resnet-18",
                        "--checkpoint", str(p)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "mine.safetensors is corrupt" in r.stderr


@pytest.mark.parametrize("kind", ["state", "weights"])
def test_a_full_disk_during_a_checkpoint_write_leaves_the_old_one_loadable(tmp_path, kind):
    # `ulimit -f` in a child process (Python ignores SIGXFSZ, so the write fails with EFBIG):
    # the write is refused with the file named, the previous checkpoint loads bit-equal, and
    # no temporary file is left beside it
    name = "state.pt" if kind == "state" else "model.safetensors"
    old = {"w": torch.arange(10.0)}
    save = results.save_state if kind == "state" else results.save_weights
    load = results.load_state if kind == "state" else results.load_weights
    save(tmp_path / name, old)
    child = (
        "import resource, sys, torch\n"
        "from vitprobe import results\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
        f"save = results.save_{kind}\n"
        "try:\n"
        "    save(sys.argv[1], {'w': torch.ones(1_000_000)})\n"
        "except OSError as e:\n"
        "    print(e.filename, e.strerror)\n"
        "    sys.exit(2)\n"
    )
    r = subprocess.run([sys.executable, "-c", child, str(tmp_path / name)], capture_output=True,
                       text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert r.returncode == 2, r.stderr
    assert r.stdout.startswith(str(tmp_path / name)), r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert torch.equal(load(tmp_path / name)["w"], old["w"])
