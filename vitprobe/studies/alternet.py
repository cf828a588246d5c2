"""AlterNet (Park & Kim 2022, §4 and Figs. 11-12): the paper's build-rule search, and fixed
models side by side.

vitprobe alternet --search [--base alternet-18] [--data-fraction 0.25]
vitprobe alternet --model alternet-18,resnet-18,vit-ti

The build rule: start from the all-conv network; replace conv blocks by MSA blocks from the
end of the network, stage by stage (the last stage first); keep a replacement only while it
improves accuracy; when it does not, move to the end of the previous stage. Every candidate
is trained with the same recipe, data and seed, through the checkpoint cache (a rerun after
a kill resumes where it stopped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from vitprobe import attention, plots, results
from vitprobe import data as vdata
from vitprobe.features import attention_modules
from vitprobe.models.registry import REGISTRY

from . import cli
from .cache import final_test_accuracy, trained_model
from .config import StudyConfig, StudyResult, option
from .runspec import RunSpec


@dataclass(frozen=True)
class AlterNetConfig(StudyConfig):
    STUDY: ClassVar[str] = "alternet"

    model: str = option("alternet-18,resnet-18,vit-ti", "model name(s), comma-separated "
                                                        "(vitprobe models lists them)")
    search: bool = option(False, "run the paper's build-rule search")
    base: str = option("alternet-18", "the AlterNet family to search (its stage depths)",
                       choices=tuple(n for n, e in REGISTRY.items()
                                     if e.family == "alternet"))
    first_stage: int = option(0, "lowest stage (0-based) the search may put an MSA in",
                              check=cli.non_negative_int)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.search:
            self.refuse(checkpoint="the search trains each candidate (from the cache)",
                        model="the search builds its candidates from --base",
                        pool="the search's candidates are AlterNets (no pooling)")
        else:
            self.refuse(base="--base and --first-stage are the search's (--search)",
                        first_stage="--base and --first-stage are the search's (--search)")


@dataclass(kw_only=True)
class AlterNetResult(StudyResult):
    """Per fixed model: its label, test accuracy, parameter count, attention logit ranges
    and run."""

    FILE: ClassVar[str] = "alternet.json"

    def accuracies(self) -> dict[str, float]:
        """Per model label, the test accuracy (a fraction)."""
        return {m["label"]: float(m["accuracy"]) for m in self.data["models"]}


@dataclass(kw_only=True)
class AlterNetSearchResult(StudyResult):
    """The build rule's search: the base family, its stage depths, every visited
    configuration (MSA counts, accuracy, kept), the chosen counts and their accuracy."""

    FILE: ClassVar[str] = "alternet_search.json"


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


def search_figure(rows: list[dict], path: Path, title: str) -> list[Path]:
    fig, ax = plots.plt.subplots(figsize=(plots.ONE_COLUMN if len(rows) <= 5
                                          else plots.TWO_COLUMNS, 2.6))
    colors = [plots.PALETTE[0] if r.get("kept", True) else "#bbbbbb" for r in rows]
    ax.bar(range(len(rows)), [100 * r["accuracy"] for r in rows], color=colors)
    ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=30, ha="right")
    ax.set_ylim(0, 108)  # untruncated: differences are read against the whole scale
    for i, r in enumerate(rows):
        ax.text(i, 100 * r["accuracy"] + 1, f"{100 * r['accuracy']:.1f}", ha="center")
    ax.set_ylabel("test accuracy (%)")
    if any("kept" in r for r in rows):
        from matplotlib.patches import Patch

        ax.legend([Patch(color=plots.PALETTE[0]), Patch(color="#bbbbbb")],
                  ["kept", "tried, not kept"], loc="lower right")
    ax.set_title(title)
    return plots.save(fig, path)


def run(config: AlterNetConfig) -> AlterNetResult | AlterNetSearchResult:
    """The fixed models' accuracies (or, with ``search``, the build rule's search), saved to
    ``config.out`` with a table and a figure."""
    device = cli.resolve_device(config.device)
    out = Path(config.out)
    if config.search:
        layers = tuple(REGISTRY[config.base].defaults["layers"])
        if not 0 <= config.first_stage < len(layers):
            raise ValueError(f"--first-stage must be in 0..{len(layers) - 1}")
        runs, base = {}, RunSpec.from_config(config, config.base, device)

        def evaluate(msa: tuple[int, ...]) -> float:
            spec = replace(base, overrides={**base.overrides, "msa": msa})
            _, info = trained_model(spec)
            runs[msa] = info
            acc = _accuracy(info)
            print(f"{config.base} msa={msa}: test accuracy {100 * acc:.2f} %", flush=True)
            return acc

        found = search(evaluate, layers, config.first_stage)
        rows = [{**v, "label": "msa " + "".join(map(str, v["msa"])),
                 "run": runs[v["msa"]].get("run_dir")} for v in found["visited"]]
        text = results.markdown_table(["step", "MSA per stage", "test acc", "kept"], (
            [i, r["msa"], f"{100 * r['accuracy']:.2f} %", "yes" if r["kept"] else "no"]
            for i, r in enumerate(rows)))
        text += f"\n\nchosen: msa={found['chosen']} ({100 * found['accuracy']:.2f} %)"
        record = {"base": config.base, "layers": layers, "visited": rows,
                  "chosen": found["chosen"], "accuracy": found["accuracy"]}
        kind = AlterNetSearchResult
        title = f"AlterNet build rule ({config.base}, data fraction {config.data_fraction:g})"
    else:
        rows = []
        images = None
        for m in cli.model_names(config):
            spec = RunSpec.from_config(config, m, device)
            model, info = trained_model(spec, config.checkpoint)
            if images is None:
                test = vdata.load(config.data, "test", config.data_dir, config.download)
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
        kind = AlterNetResult
        title = (f"test accuracy ({config.data}, {config.preset}, data fraction "
                 f"{config.data_fraction:g})")
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(kind.FILE).stem
    caption = (f"{title}; seed {config.seed}. Test accuracy on the whole test set after the "
               f"preset's training.")
    results.atomic_write_bytes(out / f"{name}.md", (caption + "\n\n" + text + "\n").encode())
    result = kind(record=record, config=config.to_dict())
    path = result.save(out)
    fig = search_figure(rows, out / name, title)
    print(f"results: {path}\nfigure: {fig[0]} (+ .pdf)")
    return result


def main(argv: list[str] | None = None) -> int:
    config = AlterNetConfig.parse(argv, __doc__)
    cli.setup_logging(config.quiet)
    run(config)
    return 0


if __name__ == "__main__":
    cli.run(main)
