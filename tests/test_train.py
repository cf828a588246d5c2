"""Training: the schedule by hand, loss goes down, a SIGKILL'd run resumes to the very same
weights, a NaN stops the run and keeps the last good checkpoint."""

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch

from vitprobe import results
from vitprobe.data import Augment, Loader, load
from vitprobe.train import Recipe, TrainConfig, TrainingDiverged, evaluate, fit, lr_scheduler


def schedule(recipe, total, warmup):
    """The learning rate ``fit`` trains update t at, t = 0..total-1 (and one past the end)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=recipe.lr)
    sched = lr_scheduler(opt, recipe, total, warmup)
    rates = []
    for t in range(total + 1):
        sched.step_update(t)
        rates.append(opt.param_groups[0]["lr"])
    return rates


def test_lr_schedule_warmup_then_cosine_by_hand():
    # 10 warm-up steps from 0.01 to 1 (step 0.099 each), then half a cosine over 90 steps
    r = Recipe(epochs=1, batch_size=1, lr=1.0, warmup_lr=0.01, min_lr=0.1)
    lr = schedule(r, 100, 10)
    assert lr[0] == pytest.approx(0.01) and lr[9] == pytest.approx(0.01 + 9 * 0.099)
    assert lr[10] == pytest.approx(1.0)
    assert lr[55] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 45 / 90)))
    assert lr[32] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 22 / 90)))
    assert lr[99] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 89 / 90)))
    assert lr[100] == pytest.approx(0.1)  # past the end: min_lr
    assert all(a < b for a, b in zip(lr[:10], lr[1:11]))  # rising
    assert all(a > b for a, b in zip(lr[10:100], lr[11:101]))  # then falling
    # no warm-up: the cosine starts at lr on the first update
    assert schedule(Recipe(epochs=1, batch_size=1, lr=2.0, min_lr=0.0), 4, 0) == \
        pytest.approx([2.0, 1 + math.cos(math.pi / 4), 1.0, 1 - math.cos(math.pi / 4), 0.0])


def small_vit(**kw):
    """Two blocks, 32 dims; GAP pooling, which learns in a few dozen steps (a class token
    needs hundreds here)."""
    from vitprobe.models import create_model

    kw.setdefault("pool", "gap")
    return create_model("vit-ti", num_classes=4, in_chans=1, img_size=28, patch_size=7,
                        embed_dim=32, depth=2, heads=2, **kw)


def synthetic_loaders(batch=32, seed=0):
    train, test = load("synthetic", "train"), load("synthetic", "test")
    return (Loader(train, batch, shuffle=True, augment=Augment(2, False), seed=seed,
                   drop_last=True), Loader(test, 128))


def test_smoke_training_lowers_the_loss():
    from vitprobe.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet-18", num_classes=4, in_chans=1, img_size=28,
                         widths=(8, 16, 32, 64))
    train, test = synthetic_loaders()
    before = evaluate(model, test)
    metrics = fit(model, train, test, TrainConfig(Recipe(epochs=2, batch_size=32, lr=1e-3),
                                                  progress=False))
    assert metrics[-1]["test_loss"] < 0.5 * before["loss"]
    assert metrics[-1]["test_acc"] > 0.9


WORKER = textwrap.dedent("""
    import os, signal, sys, torch
    sys.path.insert(0, {tests!r})
    from test_train import small_vit, synthetic_loaders
    from vitprobe.train import Recipe
    from vitprobe.train import TrainConfig, fit
    torch.set_num_threads(1)
    kill_at = int(sys.argv[2])
    def on_step(step):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    torch.manual_seed(0)
    model = small_vit(drop_path_rate=0.2, drop_rate=0.1)
    train, test = synthetic_loaders()
    # the first 1.25 epochs (20 steps) at 14 px: the resumed steps 18-19 run at 14 px, the
    # rest at 28
    fit(model, train, test, TrainConfig(Recipe(epochs=2, batch_size=32, lr=1e-3,
        warmup_epochs=0.5, progressive=((1.25, 14),)), seed=0, save_every_steps=3,
        progress=False),
        run_dir=sys.argv[1], on_step=on_step)
""")


def test_sigkill_and_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(__import__("pathlib").Path(__file__).parent)))
    run = [sys.executable, str(script)]
    killed = subprocess.run(run + [str(tmp_path / "a"), "20"], capture_output=True)
    assert killed.returncode == -9  # really killed, mid-epoch 2 (16 steps per epoch)
    assert results.load_state(tmp_path / "a" / "state.pt")["step"] == 18
    assert not (tmp_path / "a" / "model.safetensors").exists()
    resumed = subprocess.run(run + [str(tmp_path / "a"), "-1"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run(run + [str(tmp_path / "b"), "-1"], capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr
    a = results.load_weights(tmp_path / "a" / "model.safetensors")
    b = results.load_weights(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    lines = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert [json.loads(line)["train_sizes"] for line in lines] == [[14], [14, 28]]
    assert (tmp_path / "a" / "epochs" / "epoch-002.safetensors").is_file()


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = small_vit()
    train, test = synthetic_loaders()

    def poison(step):
        if step == 3:
            with torch.no_grad():
                model.head.bias.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 1 step 3"):
        fit(model, train, test, TrainConfig(Recipe(epochs=1, batch_size=32, lr=1e-3),
                                            save_every_steps=2, progress=False),
            run_dir=tmp_path, on_step=poison)
    state = results.load_state(tmp_path / "state.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.mark.parametrize("poison", ["gradient", "update"])
def test_a_non_finite_gradient_or_update_on_the_last_step_is_never_saved(tmp_path, poison,
                                                                         monkeypatch):
    """The loss is finite, but the last step's gradient (a hook) or the update itself (a
    patched optimizer step) puts NaN in the weights: training stops naming the step, no
    model.safetensors is written, and the kept checkpoint is finite."""
    torch.manual_seed(0)
    model = small_vit()
    train, test = synthetic_loaders()
    last = len(train) - 1  # the step index of the last optimiser step of one epoch
    seen = {"step": 0}
    if poison == "gradient":
        model.head.weight.register_hook(
            lambda g: torch.full_like(g, float("nan")) if seen["step"] == last else g)
    else:
        real = torch.optim.AdamW.step

        def step(self, *a, **k):
            out = real(self, *a, **k)
            if seen["step"] == last:
                with torch.no_grad():
                    model.head.bias.fill_(float("nan"))
            return out

        monkeypatch.setattr(torch.optim.AdamW, "step", step)
    what = "a gradient became" if poison == "gradient" else "the weights became"
    with pytest.raises(TrainingDiverged, match=f"{what} non-finite.* at epoch 1 step {last}; "
                                               "the last finite checkpoint stays"):
        fit(model, train, test, TrainConfig(Recipe(epochs=1, batch_size=32, lr=1e-3),
                                            save_every_steps=2, progress=False),
            run_dir=tmp_path, on_step=lambda s: seen.update(step=s))
    assert not (tmp_path / "model.safetensors").exists()
    state = results.load_state(tmp_path / "state.pt")
    assert 0 < state["step"] <= last
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_distillation_losses_equal_a_hand_computation():
    from vitprobe.train import distillation_loss

    cls = torch.tensor([[2.0, 0.0, 0.0]])
    dist = torch.tensor([[0.0, 1.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0, 3.0]])
    y = torch.tensor([0])
    e = math.e
    ce_cls = -math.log(e ** 2 / (e ** 2 + 2))
    hard = 0.5 * ce_cls + 0.5 * math.log(e + 2)
    assert distillation_loss(cls, dist, teacher, y, "hard").item() == pytest.approx(hard)
    tau, alpha = 2.0, 0.3
    pt = torch.softmax(teacher / tau, -1)[0].tolist()
    ps = torch.softmax(dist / tau, -1)[0].tolist()
    kl = sum(a * (math.log(a) - math.log(b)) for a, b in zip(pt, ps))
    soft = (1 - alpha) * ce_cls + alpha * tau ** 2 * kl
    got = distillation_loss(cls, dist, teacher, y, "soft", alpha, tau).item()
    assert got == pytest.approx(soft, rel=1e-6)


def test_distillation_training_lowers_both_losses():
    from vitprobe.models import create_model
    from vitprobe.train import Distillation, distillation_loss

    torch.manual_seed(0)
    teacher = small_vit().eval()
    student = create_model("deit-ti-distilled", num_classes=4, in_chans=1, img_size=28,
                           patch_size=7, embed_dim=32, depth=2, heads=2)
    train, test = synthetic_loaders()
    x, y = next(train.iterate(0))

    def losses():
        student.set_distilled_training(True)
        student.train()
        with torch.no_grad():
            c, d = student(x)
            t = teacher(x)
        return (torch.nn.functional.cross_entropy(c, y).item(),
                distillation_loss(c, d, t, y, "hard").item())

    before = losses()
    student.set_distilled_training(True)
    fit(student, train, None, TrainConfig(Recipe(epochs=3, batch_size=32, lr=3e-3),
                                          progress=False),
        criterion=Distillation(teacher, "hard"))
    after = losses()
    assert after[0] < before[0] and after[1] < before[1]


def test_cpu_training_uses_explicit_attention_with_the_same_result_and_restores_the_flags():
    from vitprobe.features import attention_modules

    def run(fused):
        torch.manual_seed(0)
        model = small_vit()
        flags = []
        attn = [m for _, m in attention_modules(model)]
        fit(model, *synthetic_loaders(),
            TrainConfig(Recipe(epochs=1, batch_size=32, lr=1e-3), amp=False, progress=False,
                        fused_attention=fused),
            on_step=lambda step: flags.append({m.fused_attn for m in attn}))
        assert all(m.fused_attn for m in attn)  # restored after training
        return model, flags

    explicit, seen_explicit = run(None)   # CPU default: the explicit softmax path
    fused, seen_fused = run(True)
    assert seen_explicit and all(f == {False} for f in seen_explicit)
    assert all(f == {True} for f in seen_fused)
    for (name, a), b in zip(explicit.state_dict().items(), fused.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)


def test_a_specs_initial_weights_depend_on_its_seed_alone():
    from vitprobe.studies.runspec import RunSpec, build

    spec = RunSpec(model="vit-ti", data="synthetic", preset="smoke", seed=3)
    a = build(spec).state_dict()
    torch.rand(1000)  # whatever the process drew before must not matter
    before = torch.random.get_rng_state()
    b = build(spec).state_dict()
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is untouched
    other = build(RunSpec(model="vit-ti", data="synthetic", preset="smoke", seed=4)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    w = "blocks.0.attn.qkv.weight"
    assert w in a and not torch.equal(a[w], other[w])


def test_a_cached_run_of_another_recipe_init_or_training_code_is_refused(tmp_path):
    from dataclasses import replace

    from vitprobe.studies.cache import _check_cached_recipe
    from vitprobe.studies.runspec import RunSpec, architecture, build, run_config

    spec = RunSpec(model="vit-ti", data="synthetic", preset="smoke", runs_dir=str(tmp_path))
    config = run_config(spec)
    results.save_result(tmp_path / "config.json", {}, config, 0)
    _check_cached_recipe(tmp_path, config)  # the same config is reused
    older = {k: v for k, v in config.items() if k != "training"}  # before timm/torchvision
    for saved, what in ((dict(config, recipe=replace(spec.recipe(), epochs=7)), "recipe"),
                        ({k: v for k, v in config.items() if k != "init"}, "initialisation"),
                        (older, "LR schedule or crop/flip")):
        results.save_result(tmp_path / "config.json", {}, saved, 0)
        with pytest.raises(ValueError, match=f"made with another {what}"):
            _check_cached_recipe(tmp_path, config)
    # a resnet-18 cached when resnet-18 was the pre-activation ResNet: same name, same
    # arguments, another architecture
    spec = RunSpec(model="resnet-18", data="synthetic", preset="smoke", runs_dir=str(tmp_path))
    config = run_config(spec)
    old = build(replace(spec, model="preresnet-18"))
    assert architecture(old) != config["architecture"]
    for saved in (dict(config, architecture=architecture(old)),
                  {k: v for k, v in config.items() if k != "architecture"}):
        results.save_result(tmp_path / "config.json", {}, saved, 0)
        with pytest.raises(ValueError, match=r"another architecture \(the model's code changed"):
            _check_cached_recipe(tmp_path, config)


def test_the_recipe_names_the_precision_whatever_the_cpu(monkeypatch):
    """The same preset trains in the same precision on any CPU: no timing, no CPU flag
    decides it (a CPU reporting AMX bf16 still trains a float32 recipe in float32)."""
    from vitprobe import train
    from vitprobe.studies import presets
    from vitprobe.train import precision

    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "open", lambda *a, **k: (_ for _ in ()).throw(AssertionError(
        "the precision must not depend on /proc/cpuinfo")), raising=False)
    for preset in ("smoke", "quick", "small"):
        for model in ("vit-mini", "resnet-18-mini", "alternet-18-mini"):
            assert presets.recipe(preset, model).precision == "float32"
    assert presets.recipe("paper", "vit-ti").precision == "bfloat16"
    assert train.autocast_dtype(cpu, "float32") is None
    assert train.autocast_dtype(cpu, "bfloat16") is torch.bfloat16
    assert train.autocast_dtype(cpu, False) is None  # amp off: float32 whatever the recipe
    with pytest.raises(ValueError, match="allowed: float32, bfloat16, float16"):
        train.autocast_dtype(cpu, "tf32")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        Recipe(epochs=1, batch_size=8, lr=1e-3, precision="fp8")
    with train.autocast(cpu, torch.bfloat16):  # an explicit dtype is used as given
        assert torch.get_autocast_dtype("cpu") is torch.bfloat16 and \
            torch.is_autocast_enabled("cpu")
    with train.autocast(cpu, None):
        assert not torch.is_autocast_enabled("cpu")


def test_a_resumed_run_keeps_the_precision_it_started_with(tmp_path):
    """A run resumes in the precision recorded in its state, even when the recipe it is
    resumed with names another: the kill-and-resume weights equal an uninterrupted run's."""
    bf16 = Recipe(epochs=2, batch_size=32, lr=1e-3, precision="bfloat16")
    fp32 = Recipe(epochs=2, batch_size=32, lr=1e-3)

    def run(run_dir, recipes, stop_after=None):
        torch.manual_seed(0)
        model = small_vit()
        for i, recipe in enumerate(recipes):
            cfg = TrainConfig(recipe, progress=False, save_every_steps=1)
            if i == 0 and stop_after:
                def stop(step):
                    if step == stop_after:
                        raise KeyboardInterrupt
                with pytest.raises(KeyboardInterrupt):
                    fit(model, *synthetic_loaders(), cfg, run_dir, on_step=stop)
                torch.manual_seed(123)  # a fresh process: whatever RNG state
                model = small_vit()
            else:
                metrics = fit(model, *synthetic_loaders(), cfg, run_dir)
        return model, metrics

    whole, m_whole = run(tmp_path / "a", [bf16])
    resumed, m_resumed = run(tmp_path / "b", [bf16, fp32], stop_after=3)
    assert [m["autocast"] for m in m_whole] == ["bfloat16"] * 2 == \
        [m["autocast"] for m in m_resumed]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    f32, m_f32 = run(tmp_path / "c", [fp32])
    assert [m["autocast"] for m in m_f32] == ["float32"] * 2
    assert not torch.equal(f32.state_dict()["head.weight"], whole.state_dict()["head.weight"])


def test_a_fractional_epoch_count_ends_part_way_through_the_last_pass():
    """epochs=1.5 with 16 steps per epoch: 24 steps, the cosine schedule reaching its floor at
    step 24, an evaluation after each of the two (one partial) passes, and the partial pass
    drawing the start of that epoch's own shuffled order."""
    torch.manual_seed(0)
    model = small_vit()
    train, test = synthetic_loaders()
    assert len(train) == 16
    recipe = Recipe(epochs=1.5, batch_size=32, lr=1e-3, min_lr=0.0)
    seen, steps = [], []  # training inputs (evaluation runs in eval mode)
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0]) if m.training else None)
    metrics = fit(model, train, test, TrainConfig(recipe, progress=False),
                  on_step=steps.append)
    assert steps == list(range(1, 25)) and len(seen) == 24
    assert [m["epoch"] for m in metrics] == [1, 2] and [m["step"] for m in metrics] == [16, 24]
    # the last update's rate: half a cosine over 24 steps, at step 23
    assert metrics[-1]["lr"] == pytest.approx(5e-4 * (1 + math.cos(math.pi * 23 / 24)))
    expected = [x for x, _ in train.iterate(1)][:8]
    for got, want in zip(seen[16:], expected, strict=True):
        assert torch.equal(got, want)


def test_fewer_test_evaluations_leave_the_weights_unchanged():
    """evaluations=2 over 5 epochs: the test set at epochs 3 and 5 only (ceil(5/2) = 3, and
    the last), and bit for bit the weights of a run evaluated after every epoch."""
    runs = {}
    for k in (None, 2):
        torch.manual_seed(0)
        model = small_vit()
        train, test = synthetic_loaders()
        train.data = train.data.subset(slice(0, 64))
        metrics = fit(model, train, test, TrainConfig(Recipe(epochs=5, batch_size=32, lr=1e-3),
                                                      progress=False, evaluations=k))
        runs[k] = (model.state_dict(), [m["epoch"] for m in metrics if "test_acc" in m])
    assert runs[None][1] == [1, 2, 3, 4, 5] and runs[2][1] == [3, 5]
    for name, t in runs[None][0].items():
        assert torch.equal(t, runs[2][0][name]), name


def test_progressive_stages_by_step():
    from vitprobe.train import train_size

    stages = ((0.5, 12), (1.25, 20))  # 16 steps per epoch: steps 0-7 at 12, 8-19 at 20
    assert [train_size(s, 16, stages) for s in (0, 7, 8, 19, 20, 40)] == \
        [12, 12, 20, 20, None, None]
    assert train_size(0, 16, ()) is None
    for bad in [((1.0, 20), (0.5, 12)), ((0.0, 20),), ((1.0, 20.5),)]:
        with pytest.raises(ValueError, match="ascending epochs and integer sizes"):
            Recipe(epochs=2, batch_size=32, lr=1e-3, progressive=bad)


def test_progressive_sizes_snap_to_the_patch_and_the_quick_vit_recipe_uses_them():
    from vitprobe.studies.presets import snap_progressive
    from vitprobe.studies.runspec import RunSpec

    r = Recipe(epochs=2, batch_size=32, lr=1e-3, progressive=((0.5, 13), (1.0, 20), (1.5, 30)))
    assert snap_progressive(r, 28, 7).progressive == ((0.5, 14), (1.0, 21))  # 28: dropped
    assert snap_progressive(r, 28, 4).progressive == ((0.5, 12), (1.0, 20))
    assert RunSpec("vit-ti").recipe().progressive == ((1.0, 20),)
    assert RunSpec("vit-ti", overrides={"patch_size": 7}).recipe().progressive == ((1.0, 21),)
    assert RunSpec("resnet-18").recipe().progressive == ()


def test_progressive_resizing_trains_the_first_stage_on_resized_batches():
    """Recipe(epochs=2, progressive=((1.0, 14),)): epoch 1's 16 steps see each augmented batch
    resized to 14 px (bilinear, antialiased), epoch 2 the 28-px batches themselves, and the
    evaluations the test images at 28 px."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = small_vit()
    train, test = synthetic_loaders()
    recipe = Recipe(epochs=2, batch_size=32, lr=1e-3, progressive=((1.0, 14),))
    seen, evals = [], []
    model.register_forward_pre_hook(
        lambda m, args: (seen if m.training else evals).append(args[0]))
    metrics = fit(model, train, test, TrainConfig(recipe, progress=False))
    assert len(seen) == 32
    for got, (x, _) in zip(seen[:16], train.iterate(0), strict=True):
        want = F.interpolate(x, size=(14, 14), mode="bilinear", antialias=True)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    for got, (x, _) in zip(seen[16:], train.iterate(1), strict=True):
        assert torch.equal(got, x)
    assert {tuple(x.shape[-2:]) for x in evals} == {(28, 28)}
    assert [m["train_sizes"] for m in metrics] == [[14], [28]]


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_corrupt_state_falls_back_to_the_newest_intact_epoch_checkpoint(tmp_path, damage,
                                                                          caplog):
    """Killed in epoch 2 (after epoch 1's checkpoint), then state.pt is damaged: the rerun
    warns, resumes from the end of epoch 1 and finishes both epochs with finite weights.
    Killed in epoch 1 (no epoch checkpoint yet): a ValueError naming the folder to delete."""
    torch.manual_seed(0)
    train, test = synthetic_loaders()
    spe = len(train)
    recipe = Recipe(epochs=2, batch_size=32, lr=1e-3)

    def kill_at(k):
        def on_step(step):
            if step == k:
                raise KeyboardInterrupt
        return on_step

    def damage_state(run):
        raw = (run / "state.pt").read_bytes()
        (run / "state.pt").write_bytes(raw[: len(raw) // 3] if damage == "truncated" else b"")

    run = tmp_path / "late"
    with pytest.raises(KeyboardInterrupt):
        fit(small_vit(), train, test, TrainConfig(recipe, save_every_steps=2, progress=False),
            run_dir=run, on_step=kill_at(spe + 4))
    damage_state(run)
    with caplog.at_level("WARNING"):
        metrics = fit(small_vit(), train, test, TrainConfig(recipe, progress=False), run_dir=run)
    assert "resuming from the end of epoch 1" in caplog.text
    assert [m["epoch"] for m in metrics] == [1, 2] and metrics[-1]["step"] == 2 * spe
    weights = results.load_weights(run / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values())

    run = tmp_path / "early"
    with pytest.raises(KeyboardInterrupt):
        fit(small_vit(), train, test, TrainConfig(recipe, save_every_steps=2, progress=False),
            run_dir=run, on_step=kill_at(4))
    damage_state(run)
    with pytest.raises(ValueError, match=f"state.pt is unreadable .* no epoch checkpoint of "
                                         f"{run} is intact: delete {run} and rerun"):
        fit(small_vit(), train, test, TrainConfig(recipe, progress=False), run_dir=run)


def test_a_cached_run_on_other_training_data_is_refused(tmp_path):
    """Two --data-dir folders whose Fashion-MNIST training files differ, or another data
    fraction: the run cached on the first is not reused."""
    import gzip
    import struct
    from dataclasses import replace

    import numpy as np

    from vitprobe.studies.cache import _check_cached_recipe
    from vitprobe.studies.runspec import RunSpec, run_config

    def write_idx(path, array):
        header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + \
            struct.pack(f">{array.ndim}I", *array.shape)
        path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))

    for name, fill in (("a", 0), ("b", 1)):
        d = tmp_path / name
        d.mkdir()
        for split in ("train", "t10k"):
            write_idx(d / f"{split}-images-idx3-ubyte.gz", np.full((20, 28, 28), fill))
            write_idx(d / f"{split}-labels-idx1-ubyte.gz", np.arange(20) % 10)
    spec = RunSpec(model="vit-ti", data="fashion-mnist", preset="smoke",
                   data_dir=str(tmp_path / "a"), runs_dir=str(tmp_path / "runs"))
    results.save_result(tmp_path / "config.json", {}, run_config(spec), 0)
    _check_cached_recipe(tmp_path, run_config(spec))  # the same data: reused
    for other in (replace(spec, data_dir=str(tmp_path / "b")), replace(spec, data_fraction=0.5)):
        with pytest.raises(ValueError, match=r"another training data \(another data set"):
            _check_cached_recipe(tmp_path, run_config(other))
    with pytest.raises(ValueError, match=r"data_fraction must be in \(0, 1\]; got 2"):
        RunSpec(model="vit-ti", data_fraction=2)


def test_a_training_that_fails_before_any_checkpoint_leaves_no_run_folder(tmp_path,
                                                                           monkeypatch):
    """A failure before the first checkpoint (here: the first step) removes the run folder
    it made; one that fails later keeps it for the rerun to resume."""
    import vitprobe.studies.cache as cache
    from vitprobe.studies.runspec import RunSpec

    spec = RunSpec(model="vit-ti", data="synthetic", preset="smoke", runs_dir=str(tmp_path),
                   progress=False)

    def broken_fit(model, train, test, config, run_dir, criterion=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "fit", broken_fit)
    with pytest.raises(KeyboardInterrupt):
        cache.trained_model(spec)
    assert not spec.run_dir.exists()

    def late_failure(model, train, test, config, run_dir, criterion=None):
        results.save_state(run_dir / "state.pt", {"step": 3})
        raise TrainingDiverged("loss became nan at epoch 1 step 4")

    monkeypatch.setattr(cache, "fit", late_failure)
    with pytest.raises(TrainingDiverged):
        cache.trained_model(spec)
    assert (spec.run_dir / "state.pt").is_file() and (spec.run_dir / "config.json").is_file()


def test_a_malicious_state_pt_is_never_executed(tmp_path):
    """A state.pt crafted to run a shell command when unpickled: it is loaded with
    weights_only, refused as unreadable, and with no intact epoch checkpoint the run names
    its folder to delete — the command never ran."""
    import os

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": Exploit()}, run / "state.pt")
    train, test = synthetic_loaders()
    with pytest.raises(ValueError, match=f"state.pt is unreadable .*delete {run}"):
        fit(small_vit(), train, test, TrainConfig(Recipe(epochs=1, batch_size=32, lr=1e-3),
                                                  progress=False), run_dir=run)
    assert not marker.exists()


def test_the_resumable_state_names_its_kind_and_version(tmp_path):
    """state.pt says what it is; a resume point says which kind it came from (the full state
    or an epoch checkpoint), not whether a dict happens to hold an optimizer; a state of
    another kind or a newer version is refused in one line; one written before the kind was
    recorded still resumes."""
    from vitprobe import results
    from vitprobe.train import STATE_KIND, STATE_VERSION, resume_point
    from vitprobe.train.checkpoint import save_state

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    save_state(tmp_path, model, opt, scaler, 7, [{"epoch": 1, "step": 7}], "float32")
    raw = results.load_state(tmp_path / "state.pt")
    assert (raw["kind"], raw["version"]) == (STATE_KIND, STATE_VERSION) == \
        ("vitprobe-train-state", 1)
    at = resume_point(tmp_path, torch.device("cpu"))
    assert (at.kind, at.step, at.autocast) == ("state", 7, "float32")
    assert torch.equal(at.model["weight"], model.weight.detach())
    legacy = {k: v for k, v in raw.items() if k not in ("kind", "version")}
    results.save_state(tmp_path / "state.pt", legacy)
    assert resume_point(tmp_path, torch.device("cpu")).kind == "state"
    for kind, version in (("something-else", 1), (STATE_KIND, STATE_VERSION + 1)):
        results.save_state(tmp_path / "state.pt", {**raw, "kind": kind, "version": version})
        with pytest.raises(ValueError, match=f"is a {kind} version {version} file"):
            resume_point(tmp_path, torch.device("cpu"))


def test_a_timm_model_at_the_smoke_preset_is_trained_with_a_warning(tmp_path, caplog):
    """Smoke shrinks our registry's models only: a timm model keeps its size, and says so."""
    from vitprobe.studies.cache import trained_model
    from vitprobe.studies.runspec import RunSpec

    spec = RunSpec(model="timm:test_resnet", data="synthetic", preset="smoke",
                   runs_dir=str(tmp_path), progress=False)
    with caplog.at_level("WARNING"):
        trained_model(spec)
    assert "timm:test_resnet is trained at its full size: --preset smoke shrinks only" in \
        caplog.text
