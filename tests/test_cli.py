"""Bad input on the command line: one line on stderr naming what is allowed, exit code 2."""

import argparse
import subprocess
import sys

import numpy as np
import pytest
import torch


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("args, needle", [
    (["--model", "vit-xx"], "allowed: alternet-18"),
    (["--data", "imagenet"], "invalid choice: 'imagenet' (choose from 'fashion-mnist', 'cifar10'"),
    (["--preset", "huge"],
     "invalid choice: 'huge' (choose from 'smoke', 'quick', 'small', 'paper')"),
    (["--patch-size", "5"], "does not divide img_size 28"),
    (["--data", "cifar10", "--data-dir", "/nonexistent"], "/nonexistent is not an existing folder"),
    (["--device", "tpu"], "allowed: cpu, cuda"),
    (["--pool", "max"], "argument --pool: invalid pooling 'max'; allowed: cls, gap, seqpool"),
    (["--data-fraction", "2"], "argument --data-fraction: 2 is not allowed: it must be in (0, 1]"),
    (["--seed", str(10 ** 20)], "argument --seed: 100000000000000000000 is not allowed: it must "
                                "be in [0, 2**32)"),
    (["--model-args", "depth=-1"], "depth must be a positive integer; got -1"),
    (["--patch-size", "0"], "argument --patch-size: 0 is not allowed: it must be >= 1"),
    (["--checkpoint", "/nonexistent.safetensors"], "is not an existing file"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, needle, tmp_path):
    r = run("studies.train", *args, "--runs-dir", str(tmp_path))
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert needle in lines[0]


@pytest.mark.parametrize("args, needle", [
    (["--num-batches", "0"], "argument --num-batches: 0 is not allowed: it must be >= 1"),
    (["--tol", "-1"], "argument --tol: -1 is not allowed: it must be in (0, 1)"),
    (["--tol", "1"], "argument --tol: 1 is not allowed: it must be in (0, 1)"),
    (["--at-epochs", "9"], "--at-epochs 9: vit-ti's training has epochs 0..1"),
    (["--at-epochs", "x"], "argument --at-epochs: 'x' is not allowed: it must be "
                          "comma-separated epochs >= 0"),
    (["--weight-decay", "-1"], "argument --weight-decay: -1 is not allowed: it must be a "
                               "finite number >= 0"),
])
def test_hessian_arguments_are_checked_before_any_training(args, needle, tmp_path):
    r = run("studies.hessian", "--preset", "smoke", "--data", "synthetic", *args,
            "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"))
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not (tmp_path / "runs").exists()  # nothing was trained


def test_out_and_runs_dir_must_be_writable_folders(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for flag, value, needle in (("--out", a_file, "is a file, not a folder"),
                                ("--runs-dir", a_file / "below", f"lies below the file {a_file}")):
        r = run("studies.hessian", "--preset", "smoke", "--data", "synthetic", flag, str(value))
        assert r.returncode == 2 and needle in r.stderr and len(r.stderr.splitlines()) == 1, \
            r.stderr
    assert "Traceback" not in r.stderr


def test_pool_choices_are_the_vit_pools_and_several_expand_the_model_list():
    from vitprobe.studies.config import StudyConfig

    def names(*argv):
        return StudyConfig.parse(list(argv)).model_names()

    assert names("--model", "vit-ti,vit-s", "--pool", "cls,gap") == \
        ["vit-ti@cls", "vit-ti@gap", "vit-s@cls", "vit-s@gap"]
    assert names("--model", "vit-ti", "--pool", "gap") == ["vit-ti"]
    assert names("--model", "vit-ti@map", "--pool", "cls,gap") == ["vit-ti@map"]


def test_model_args_parse_python_literals():
    from vitprobe.studies.cli import parse_model_args

    assert parse_model_args("depth=6,msa=(0, 1, 1, 1),pool=gap") == {
        "depth": 6, "msa": (0, 1, 1, 1), "pool": "gap"}
    with pytest.raises(ValueError, match="key=value"):
        parse_model_args("depth")


def test_checkpoint_of_another_architecture_is_rejected(tmp_path):
    from safetensors.torch import save_file

    save_file({"conv.weight": torch.zeros(3, 3)}, str(tmp_path / "other.safetensors"))
    r = run("studies.train", "--model", "resnet-18", "--checkpoint",
            str(tmp_path / "other.safetensors"))
    assert r.returncode == 2
    assert "is not a resnet-18" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_file_that_is_not_safetensors_is_named_once(tmp_path):
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    r = run("studies.train", "--model", "resnet-18", "--checkpoint", str(fake))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.count("is not a safetensors file") == 1, r.stderr
    assert f"error: {fake} is not a safetensors file (its header is not the JSON" in r.stderr


def test_help_shows_every_default_zero_included():
    r = run("studies.hessian", "--help")
    assert "the replication unit" in r.stdout
    at = r.stdout.index("  --seed SEED")  # the option's entry, not the usage line
    assert "(default: 0)" in r.stdout[at:r.stdout.index("  --", at + 5)]
    at = r.stdout.index("  --early")  # a literal % in a help text prints as written
    assert "10 % of its training" in r.stdout[at:at + 200]


def test_hessian_study_end_to_end_on_smoke_preset(tmp_path):
    r = run("studies.hessian", "--model", "vit-ti,vit-s", "--preset", "smoke", "--data",
            "synthetic", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
            "--model-args", "embed_dim=32,heads=2,depth=2",
            "--num-batches", "2", "--k", "2", "--per-block", "--at-epochs", "0,1", "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    import json

    rec = json.loads((tmp_path / "out" / "hessian.json").read_text())
    # smoke models are shrunk, and say so in every label
    assert set(rec["results"]["models"]) == {"vit-ti [smoke]", "vit-s [smoke]"}
    spectra = rec["results"]["models"]["vit-ti [smoke]"]["spectra"]
    assert set(spectra) == {"epoch 0", "epoch 1"}
    assert len(spectra["epoch 1"]["eigenvalues"]) == 2
    assert rec["provenance"]["torch"] == torch.__version__ and rec["seed"] == 0
    blocks = rec["results"]["models"]["vit-ti [smoke]"]["per_block"]
    assert {b["kind"] for b in blocks} == {"embed", "msa", "mlp"}
    for ext in ("png", "pdf"):
        assert (tmp_path / "out" / f"hessian.{ext}").stat().st_size > 1000
    assert "figure:" in r.stdout


def test_attention_study_compares_class_token_and_gap_in_one_run(tmp_path):
    import json

    r = run("studies.attention", "--model", "vit-ti,vit-ti@gap", "--preset", "smoke", "--data",
            "synthetic", "--model-args", "embed_dim=32,heads=2,depth=2", "--num-images", "4",
            "--show", "2", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
            "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads((tmp_path / "out" / "attention.json").read_text())["results"]
    assert set(rec) == {"vit-ti [smoke]", "vit-ti (gap) [smoke]"}
    for v in rec.values():
        assert set(v["deletion_auc"]) == {"rollout", "integrated gradients", "occlusion",
                                          "random"}
        assert np.array(v["mean_distance"]).shape == (2, 2)
    assert (tmp_path / "out" / "attention_vit-ti-gap.png").is_file()
    assert (tmp_path / "out" / "attention_faithfulness.md").is_file()


def test_zoo_table_reports_parameters_macs_and_throughput(tmp_path):
    import json

    r = run("studies.zoo", "--model", "cct-2-3x2,resnet-18", "--batch-size", "2", "--seconds",
            "0.05", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {row["model"]: row for row in json.loads((tmp_path / "zoo.json").read_text())
            ["results"]}
    # CIFAR's 283,723 less 2 input channels of the first conv and 64 - 49 position rows
    assert rows["cct-2-3x2"]["params"] == 283_723 - 2 * 64 * 9 - (64 - 49) * 128
    assert rows["resnet-18"]["macs"] > rows["cct-2-3x2"]["macs"] > 0
    assert all(row["infer_img_s"] > 0 and row["test_acc"] is None for row in rows.values())
    assert "| cct-2-3x2 |" in (tmp_path / "zoo.md").read_text()


@pytest.mark.parametrize("study, figure", [("fourier", "fourier_depth"),
                                           ("variance", "variance")])
def test_feature_studies_print_the_msa_vs_conv_summary(study, figure, tmp_path):
    import json

    r = run(f"studies.{study}", "--model", "vit-ti", "--preset", "smoke", "--data", "synthetic",
            "--model-args", "embed_dim=32,heads=2,depth=2", "--num-images", "8",
            "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "msa " in r.stdout and "(n=2)" in r.stdout
    saved = json.loads((tmp_path / f"{study}.json").read_text())["results"]["vit-ti [smoke]"]
    summary, intervals = saved["summary"], saved["intervals"]
    assert summary["n_msa"] == 2 and summary["n_conv_mlp"] == 2 and summary["n_subsample"] == 0
    iv = intervals["msa"]
    assert iv["low"] <= iv["high"] and iv["n"] == 8  # bootstrap over the 8 images
    assert saved["log_ratio"] is (study == "variance")
    assert (tmp_path / f"{figure}.png").is_file()


def test_a_multi_model_study_keeps_the_first_models_results_when_the_second_fails(tmp_path):
    import json

    common = ["--preset", "smoke", "--data", "synthetic", "--runs-dir", str(tmp_path / "runs"),
              "--quiet", "--model-args", "embed_dim=32,heads=2,depth=2"]
    r = run("studies.hessian", "--model", "vit-ti,timm:not_a_model", "--num-batches", "1",
            "--k", "1", "--tol", "0.1", "--out", str(tmp_path / "h"), *common)
    assert r.returncode == 2 and "unknown timm model" in r.stderr
    saved = json.loads((tmp_path / "h" / "hessian.json").read_text())["results"]["models"]
    assert list(saved) == ["vit-ti [smoke]"]
    assert len(saved["vit-ti [smoke]"]["spectra"]["final"]["eigenvalues"]) == 1
    # a model the attention study cannot read is refused before anything is trained
    r = run("studies.attention", "--model", "vit-ti,resnet-18", "--out", str(tmp_path / "a"),
            *common[:-2], "--runs-dir", str(tmp_path / "runs2"))
    assert r.returncode == 2 and "resnet-18: the attention study needs a patch-token model" \
        in r.stderr and not (tmp_path / "runs2").exists()


def test_vitprobe_console_command_lists_and_runs_the_studies(tmp_path):
    """`vitprobe` is installed beside the interpreter (pyproject's [project.scripts]);
    `vitprobe --help` lists every study, `vitprobe <study>` is `python -m studies.<study>` in
    a checkout."""
    from pathlib import Path

    exe = Path(sys.executable).parent / "vitprobe"
    assert exe.is_file(), "make test installs the package with its console command"
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for name in ("train", "hessian", "pooling", "reproduce"):
        assert f"\n  {name} " in r.stdout
    r = subprocess.run([str(exe), "hessian", "--num-batches", "0"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "--num-batches: 0 is not allowed" in r.stderr
    r = subprocess.run([str(exe), "nonsense"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown study 'nonsense'; allowed: train, hessian" in r.stderr
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("vitprobe 0.") and "torch 2." in r.stdout
    r = subprocess.run([str(exe), "models"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and {"vit-ti", "resnet-18", "alternet-18"} <= set(r.stdout.split())
    # the list is read from the studies' files: no torch start-up behind --help
    code = ("import sys; from vitprobe.studies import command; text = command.usage(); "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'loss = NLL + l2.' in ' '.join(text.split())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_help_shows_the_whole_description_every_default_and_the_run_time():
    r = run("studies.pooling", "--help")
    assert r.returncode == 0
    out = " ".join(r.stdout.split())
    assert "Class token vs GAP vs SeqPool (vs MAP) on the same data and seed" in out
    assert "vitprobe pooling [--pools cls,gap,seqpool,map]" in out  # not cut short
    for default in ("(default: quick)", "(default: 11)", "(default: 0.05)", "(default: runs)"):
        assert default in out, default
    assert "run time on a 2-core CPU: --preset smoke" in out
    for internal in ("cache", "probes", "findings", "cli", "presets", "protocols"):
        r = run(f"vitprobe.studies.{internal}", "--help")
        assert r.returncode == 1 and "is a library module, not a command" in r.stderr


def test_tensorboard_event_files_for_training_and_the_study(tmp_path):
    """--tensorboard DIR: the training writes its per-step loss and learning rate and its
    per-epoch accuracy under DIR/<data>/<run>, the Hessian study its NEP/APE and figure."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = run("studies.hessian", "--model", "vit-ti", "--preset", "smoke", "--data", "synthetic",
            "--model-args", "embed_dim=32,heads=2,depth=2", "--num-batches", "1", "--k", "1",
            "--tol", "0.1", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "o"),
            "--tensorboard", str(tmp_path / "tb"), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    (train_dir,) = list((tmp_path / "tb" / "synthetic").iterdir())
    ev = EventAccumulator(str(train_dir))
    ev.Reload()
    assert {"train/loss", "train/lr", "epoch/test_acc"} <= set(ev.Tags()["scalars"])
    assert len(ev.Scalars("train/loss")) >= 1
    ev = EventAccumulator(str(tmp_path / "tb" / "hessian"))
    ev.Reload()
    assert {"hessian/vit-ti/nep", "hessian/vit-ti/ape"} <= set(ev.Tags()["scalars"])
    assert "hessian/spectra" in ev.Tags()["images"]


def test_logging_goes_through_tqdm_and_an_epoch_line_is_readable(capsys, tmp_path):
    import logging

    from vitprobe.studies import cli

    cli.setup_logging()
    assert isinstance(logging.getLogger().handlers[0], cli.TqdmHandler)
    logging.getLogger("studies.test").info("hello %s", "world")
    assert "studies.test: hello world" in capsys.readouterr().err
    cli.setup_logging(quiet=True)  # leave the root logger as quiet as pytest had it


def test_a_bad_second_model_name_is_refused_before_the_first_is_trained(tmp_path):
    r = run("studies.hessian", "--model", "vit-ti,vit-xx", "--preset", "smoke", "--data",
            "synthetic", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "unknown model 'vit-xx'; allowed: alternet-18" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_figure_titles_name_the_default_pooling_of_token_models():
    from vitprobe.models import create_model
    from vitprobe.studies.labels import with_pooling

    vit = create_model("vit-ti", num_classes=4, in_chans=1, img_size=28, patch_size=7, depth=1)
    cnn = create_model("resnet-18", num_classes=4, in_chans=1, img_size=28)
    assert with_pooling("vit-ti", vit) == "vit-ti (cls)"
    assert with_pooling("vit-ti [smoke]", vit) == "vit-ti (cls) [smoke]"
    gap = create_model("vit-ti", num_classes=4, in_chans=1, img_size=28, patch_size=7, depth=1,
                       pool="gap")
    assert with_pooling("vit-ti (gap)", gap) == "vit-ti (gap)"
    assert with_pooling("resnet-18", cnn) == "resnet-18"


def test_pooling_refuses_pool_and_points_to_pools(tmp_path):
    r = run("studies.pooling", "--pool", "gap", "--runs-dir", str(tmp_path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "use --pools, e.g. --pools cls,gap" in r.stderr


def test_report_only_with_out_writes_the_gallery_under_out(tmp_path):
    """--out given: the gallery lands in <out>/figures, never in the committed figures/ of
    the folder the command runs in."""
    r = run("vitprobe.studies.reproduce", "--preset", "small", "--report-only", "--seeds",
            "0", "--out", str(tmp_path / "o"), "--runs-dir", str(tmp_path / "runs"),
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "figures" / "README.md").is_file()
    assert not (tmp_path / "figures").exists()


@pytest.mark.parametrize("study, model, needle", [
    ("fourier", "timm:vit_tiny_patch16_224", "has a 1x1 token grid on fashion-mnist's 28-px "
                                             "images: the feature-map probes need at least 2x2"),
    ("hessian", "timm:vit_small_patch32_224", "patch is larger than fashion-mnist's 28-px"),
])
def test_a_token_grid_too_small_is_refused_before_training(study, model, needle, tmp_path):
    r = run(f"studies.{study}", "--model", model, "--runs-dir", str(tmp_path / "runs"),
            "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert needle in r.stderr
    assert not (tmp_path / "runs").exists()  # nothing trained


def test_the_shipped_help_of_every_study_is_its_parsers_own():
    """vitprobe <study> --help prints text shipped with the package; it must be what the
    study's parser prints (renew with command.write_help() after changing an option)."""
    import json

    from vitprobe.studies import command

    for name in command.STUDIES:
        shipped = (command.HELP / f"{name}.txt").read_text(encoding="utf-8")
        assert shipped == command.generated_help(name), (
            f"{name}'s shipped help is stale: run python -c 'from vitprobe.studies.command "
            f"import write_help; write_help()'")
        assert shipped.startswith(f"usage: vitprobe {name}")
        table = json.loads((command.HELP / f"{name}.json").read_text(encoding="utf-8"))
        assert table == command.generated_options(name), f"{name}'s option table is stale"


def test_help_and_models_start_no_torch_on_the_first_call():
    """The first call after install: a study's help and the model list, torch never
    imported (checked in a fresh interpreter; their time: benchmarks/cli_latency.py)."""
    code = ("import sys, time, io, contextlib; t = time.perf_counter(); "
            "from vitprobe.studies import command; out = io.StringIO()\n"
            "for argv in (['hessian', '--help'], ['models'], ['reproduce', '-h']):\n"
            "    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
            "        command.main(argv)\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "print(round(time.perf_counter() - t, 3)); sys.stdout.write(out.getvalue())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    _, text = r.stdout.split("\n", 1)
    assert "usage: vitprobe hessian" in text and "vit-mini" in text and \
        "usage: vitprobe reproduce" in text


def test_argument_errors_are_one_line_before_torch_starts(tmp_path):
    """A mistyped command line is refused from the shipped option table with the study's own
    argument types: one line, exit 2, torch never imported, the same message as the study's
    parser gives."""

    cases = [(["hessian", "--tol", "5"],
              "argument --tol: 5 is not allowed: it must be in (0, 1)"),
             (["hessian", "--model", "vit-ti,bogus"], "argument --model: unknown model 'bogus'"),
             (["hessian", "--model", "vit-ti@xyz"], "unknown pooling 'xyz'; allowed: cls, gap"),
             (["pooling", "--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
             (["seeds", "--jobs", "0"], "argument --jobs: 0 is not allowed: it must be >= 1"),
             (["fourier", "--num-images", "1"], "it must be >= 2"),
             (["variance", "--nonsense"], "unrecognized arguments: --nonsense"),
             (["reproduce", "--seeds", "1-x"], "argument --seeds: '1-x': seeds are integers"),
             (["hessian", "--data-dir", str(tmp_path / "absent")], "is not an existing folder"),
             (["hessian", "--at-epochs", "1,-2"], "argument --at-epochs: '1,-2' is not "
                                                  "allowed: it must be comma-separated epochs"),
             (["subsets", "--fractions", "0.5,2"], "argument --fractions: '0.5,2' is not "
                                                   "allowed: it must be comma-separated numbers "
                                                   "in (0, 1]")]
    code = ("import sys, time, io, contextlib\n"
            "from vitprobe.studies import command\n"
            f"for argv in {[c[0] for c in cases]!r}:\n"
            "    err = io.StringIO(); t = time.perf_counter()\n"
            "    with contextlib.redirect_stderr(err):\n"
            "        try:\n"
            "            command.main(argv)\n"
            "        except SystemExit as e:\n"
            "            code = e.code\n"
            "    print(code, round(time.perf_counter() - t, 3), err.getvalue().strip())\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    *lines, torch_loaded = r.stdout.strip().split("\n")
    assert torch_loaded == "False"
    for (argv, message), line in zip(cases, lines):
        code, seconds, text = line.split(" ", 2)
        assert code == "2" and message in text and "\n" not in text, (argv, line)
        assert text.startswith(f"vitprobe {argv[0]}: error: ")
    # the study's own parser (python -m studies.<study>, after torch) says the same
    r = run("studies.hessian", "--tol", "5")
    assert r.returncode == 2
    assert "argument --tol: 5 is not allowed: it must be in (0, 1)" in r.stderr


def test_an_option_table_names_each_check_so_that_it_comes_back():
    from vitprobe.studies import arguments

    for name, check in arguments.CHECKS.items():
        assert arguments.check_from_spec(arguments.check_spec(check)) is check, name
    two = arguments.check_from_spec(arguments.check_spec(arguments.at_least(2)))
    assert two("2") == 2
    with pytest.raises(argparse.ArgumentTypeError, match=">= 2"):
        two("1")
    # a check of a study's own is left to its parser: the table says so with None
    assert arguments.check_spec(lambda t: t) is None and arguments.check_from_spec(None) is None


def test_quiet_means_quiet_and_verbose_shows_no_third_party_debug(tmp_path):
    """--quiet: a training prints nothing on stderr (timm's one-epoch cosine note included);
    without it, a figure written as PDF brings no fontTools subsetting lines."""
    r = run("studies.train", "--model", "resnet-18", "--preset", "smoke", "--data",
            "synthetic", "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr
    code = ("import logging; from vitprobe.studies import cli; from vitprobe import plots; "
            "cli.setup_logging(False); fig, ax = plots.plt.subplots(); ax.plot([1, 2]); "
            f"plots.save(fig, {str(tmp_path / 'figure')!r})")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "fontTools" not in r.stderr and r.stderr.count("\n") <= 2, r.stderr
