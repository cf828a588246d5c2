"""AlterNet (Park & Kim 2022, §4 and Figs. 11-12): the paper's build-rule search, and fixed
models side by side.

python -m studies.alternet --search [--base alternet-18] [--data-fraction 0.25]
python -m studies.alternet --model alternet-18,resnet-18,vit-ti

The build rule: start from the all-conv network; replace conv blocks by MSA blocks from the
end of the network, stage by stage (the last stage first); keep a replacement only while it
improves accuracy; when it does not, move to the end of the previous stage. Every candidate
is trained with the same recipe, data and seed, through the checkpoint cache (a rerun after
a kill resumes where it stopped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from models.alternet import CONFIGS as alternet_configs
from vitprobe import attention, plots, results
from vitprobe import data as vdata
from vitprobe.features import attention_modules

from . import cli
from .cache import RunSpec, final_test_accuracy, read_results, trained_model


def read_summary(folder: Path) -> dict[str, float]:
    """Per model label, the test accuracy (a fraction) of an alternet study of fixed models."""
    return {m["label"]: float(m["accuracy"])
            for m in read_results(Path(folder) / "alternet.json")["models"]}


def search(evaluate: Callable[[tuple[int, ...]], float], layers: tuple[int, ...],
           first_stage: int = 0) -> dict:
    """The paper's build rule over per-stage MSA counts.

    ``evaluate(msa)`` returns the accuracy of the AlterNet with those MSA counts (a stage of
    n blocks holds at most n // 2: ``[Conv]*(n-2m) + [Conv, MSA]*m``). Stages are visited from
    the last down to ``first_stage``; in each, one more MSA is tried while accuracy improves.
    Returns every visited configuration in order, its accuracy and whether it was kept, the
    chosen counts and their accuracy.
    """
    msa = [0] * len(layers)
    best = evaluate(tuple(msa))
    visited = [{"msa": tuple(msa), "accuracy": best, "kept": True}]
    for stage in range(len(layers) - 1, first_stage - 1, -1):
        while msa[stage] < layers[stage] // 2:
            cand = list(msa)
            cand[stage] += 1
            acc = evaluate(tuple(cand))
            kept = acc > best
            visited.append({"msa": tuple(cand), "accuracy": acc, "kept": kept})
            if not kept:
                break
            msa, best = cand, acc
    return {"visited": visited, "chosen": tuple(msa), "accuracy": best}


def _accuracy(info: dict) -> float:
    acc = final_test_accuracy(info)
    return float("nan") if acc is None else float(acc)


def _figure(rows: list[dict], path: Path, title: str) -> list[Path]:
    fig, ax = plots.plt.subplots(figsize=(max(4.0, 0.9 * len(rows)), 3.2))
    colors = [plots.PALETTE[0] if r.get("kept", True) else "#bbbbbb" for r in rows]
    ax.bar(range(len(rows)), [100 * r["accuracy"] for r in rows], color=colors)
    ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=30, ha="right",
                  fontsize=7)
    ax.set_ylim(0, 100)  # untruncated: differences are read against the whole scale
    for i, r in enumerate(rows):
        ax.text(i, 100 * r["accuracy"] + 1, f"{100 * r['accuracy']:.1f}", ha="center",
                fontsize=6)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=8)
    return plots.save(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = cli.base_parser("studies.alternet", __doc__)
    p.set_defaults(model="alternet-18,resnet-18,vit-ti")
    p.add_argument("--search", action="store_true", help="run the paper's build-rule search")
    p.add_argument("--base", default="alternet-18",
                   help="the AlterNet family to search (its stage depths; default alternet-18)")
    p.add_argument("--first-stage", type=int, default=0,
                   help="lowest stage (0-based) the search may put an MSA in")
    args = p.parse_args(argv)
    cli.setup_logging(args.quiet)
    device = cli.resolve_device(args.device)
    out = Path(args.out)
    if args.search:
        if args.base not in alternet_configs:
            raise ValueError(f"--base must be one of {', '.join(alternet_configs)}; "
                             f"got {args.base!r}")
        layers = tuple(alternet_configs[args.base]["layers"])
        if not 0 <= args.first_stage < len(layers):
            raise ValueError(f"--first-stage must be in 0..{len(layers) - 1}")
        runs, base = {}, RunSpec.from_args(args, args.base, device)

        def evaluate(msa: tuple[int, ...]) -> float:
            spec = replace(base, overrides={**base.overrides, "msa": msa})
            _, info = trained_model(spec)
            runs[msa] = info
            acc = _accuracy(info)
            print(f"{args.base} msa={msa}: test accuracy {100 * acc:.2f} %", flush=True)
            return acc

        found = search(evaluate, layers, args.first_stage)
        rows = [{**v, "label": "msa " + "".join(map(str, v["msa"])),
                 "run": runs[v["msa"]].get("run_dir")} for v in found["visited"]]
        text = results.markdown_table(["step", "MSA per stage", "test acc", "kept"], (
            [i, r["msa"], f"{100 * r['accuracy']:.2f} %", "yes" if r["kept"] else "no"]
            for i, r in enumerate(rows)))
        text += f"\n\nchosen: msa={found['chosen']} ({100 * found['accuracy']:.2f} %)"
        record = {"base": args.base, "layers": layers, "visited": rows,
                  "chosen": found["chosen"], "accuracy": found["accuracy"]}
        name = "alternet_search"
        title = f"AlterNet build rule ({args.base}, data fraction {args.data_fraction:g})"
    else:
        rows = []
        images = None
        for m in cli.model_names(args):
            spec = RunSpec.from_args(args, m, device)
            model, info = trained_model(spec, args.checkpoint)
            if images is None:
                test = vdata.load(args.data, "test", args.data_dir, args.download)
                images = test.normalize(test.images[:64]).to(device)
            # the attention's conditioning: how far its softmax is from saturating
            ranges = ([attention.logit_range(a) for a in attention.capture(model, images)]
                      if attention_modules(model) else [])
            rows.append({"label": spec.label, "accuracy": _accuracy(info),
                         "params": sum(q.numel() for q in model.parameters()),
                         "attention_logit_range": ranges, "run": info})
        text = results.markdown_table(
            ["model", "params", "test acc", "attention logit range (max over layers)"],
            ([r["label"], f"{r['params']:,}", f"{100 * r['accuracy']:.2f} %",
              f"{max(r['attention_logit_range']):.1f}" if r["attention_logit_range"] else "—"]
             for r in rows))
        record = {"models": rows}
        name = "alternet"
        title = f"test accuracy ({args.data}, {args.preset}, data fraction {args.data_fraction:g})"
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    results.atomic_write_bytes(out / f"{name}.md", (text + "\n").encode())
    path = results.save_result(out / f"{name}.json", record, vars(args), args.seed)
    fig = _figure(rows, out / name, title)
    print(f"results: {path}\nfigure: {fig[0]} (+ .pdf)")
    return 0


if __name__ == "__main__":
    cli.run(main)
