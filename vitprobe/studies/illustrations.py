"""The gallery's illustrations — one seed's figures (Park & Kim 2022 Figs. 1a, 1b, 1c/4, 2a,
6; ViT Fig. 7) — drawn from that seed's records alone, so a report from the committed
records (``vitprobe reproduce --report-only``) shows what the run that made them showed.

``ILLUSTRATIONS`` maps each figure the pipeline names (``pipeline.Stage.figures``, its roster
template) to a function ``draw(folder, path, context)`` that reads the study's record in
``folder`` and saves the figure at ``path`` (PNG + PDF), returning the saved paths or None
when the record does not hold what it needs. Each ``*_data`` function returns the numbers its
figure draws, so tests check them against independent readings of the records. A figure whose
record lacks what it needs (one made by older probe code) is taken from the study's own output
when the run made it, and otherwise listed as not drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitprobe import attention, plots, results
from vitprobe.fourier import FourierTap
from vitprobe.landscape import Surface
from vitprobe.spectra import Spectrum

from . import alternet
from . import attention as attention_study
from .attention import AttentionResult
from .cache import load_checkpoint
from .findings import Context
from .fourier import FourierResult
from .hessian import HessianResult
from .labels import named_pooling
from .runspec import build
from .subsets import SubsetsResult


@dataclass(frozen=True)
class Polar:
    """A recorded trajectory (``landscape.Trajectory``'s drawn fields)."""

    radius: np.ndarray
    angle: np.ndarray
    pca_coords: np.ndarray


def hessian_data(folder: Path) -> dict[str, np.ndarray]:
    """Per model (its pooling named) and, where the record holds more than the final model,
    per checkpoint (``"vit-mini (cls), epoch 2"``): the top-k eigenvalues, one row per
    mini-batch, in the record's order."""
    res = HessianResult.load(folder)
    out = {}
    for label in res.labels:
        spectra = res.data["models"][label]["spectra"]
        for at in spectra:
            key = named_pooling(label) if len(spectra) == 1 else f"{named_pooling(label)}, {at}"
            out[key] = res.spectrum(label, at).eigenvalues
    return out


def hessian_figure(folder: Path, path: Path, c: Context) -> list[Path]:
    config = HessianResult.load(folder).config
    data = "clean" if config.get("clean") else "augmented"
    return plots.spectrum_figure(hessian_data(folder), path,
                                 title=f"Hessian max eigenvalue spectra ({config.get('data')}, "
                                       f"{data} training data)")


def fourier_data(folder: Path) -> dict[str, list[FourierTap]]:
    """Per model (its pooling named), every tap's ΔlogAmplitude against frequency."""
    res = FourierResult.load(folder)
    return {named_pooling(label): [FourierTap(
        t["name"], t["kind"], float(t["depth"]), np.asarray(t["frequencies"], dtype=float),
        np.asarray(t["delta_log_amplitude"], dtype=float), float(t["highest"]),
        float(t["highest_frequency"])) for t in rec["taps"]] for label, rec in res.data.items()}


def fourier_figure(folder: Path, path: Path, c: Context) -> list[Path]:
    return plots.fourier_figure(fourier_data(folder), path)


def subsets_data(folder: Path) -> dict[str, np.ndarray]:
    """Per model and fraction whose spectrum the study took (``"vit-mini, 0.06"``): its
    top-k eigenvalues."""
    return {f"{model}, {r.fraction:g}": r.eigenvalues
            for model, runs in SubsetsResult.load(folder).runs().items()
            for r in runs if r.eigenvalues is not None}


def subsets_figure(folder: Path, path: Path, c: Context) -> list[Path] | None:
    data = subsets_data(folder)
    return plots.spectrum_figure(data, path, title="Hessian spectra per training-set "
                                                   "fraction") if data else None


def _surface(d: dict) -> Surface:
    return Surface(tuple(np.asarray(x, dtype=float) for x in d["coords"]),
                   np.asarray(d["loss"], dtype=float), np.asarray(d["accuracy"], dtype=float),
                   float(d.get("l2_coef", 0.0)), float(d.get("seconds", 0.0)),
                   d.get("meta") or {})


def landscape_data(folder: Path) -> dict[str, dict[str, Surface]]:
    """Per model (its pooling named): its 2-D ``surface`` and 1-D ``slice``."""
    models = results.load_json(Path(folder) / "landscape.json")["results"]["models"]
    return {named_pooling(label): {"surface": _surface(rec["surface"]),
                                   "slice": _surface(rec["slice"])}
            for label, rec in models.items()}


def landscape_figure(folder: Path, path: Path, c: Context) -> list[Path]:
    what = results.load_json(Path(folder) / "landscape.json")["results"]["data"]
    return plots.landscape_figure(landscape_data(folder), path, title=f"loss landscape ({what})")


def trajectory_data(folder: Path) -> dict[str, Polar]:
    """Per model with a recorded trajectory: radius, angle and PCA coordinates per checkpoint."""
    models = results.load_json(Path(folder) / "landscape.json")["results"]["models"]
    return {named_pooling(label): Polar(*(np.asarray(rec["trajectory"][k], dtype=float)
                                          for k in ("radius", "angle", "pca_coords")))
            for label, rec in models.items() if "trajectory" in rec}


def trajectory_figure(folder: Path, path: Path, c: Context) -> list[Path] | None:
    data = trajectory_data(folder)
    return (plots.trajectory_figure(data, path) or None) if data else None


def distance_data(folder: Path) -> dict[str, np.ndarray]:
    """Per model (its pooling named): mean attention distance per block and head."""
    return {named_pooling(label): np.asarray(rec["mean_distance"], dtype=float)
            for label, rec in AttentionResult.load(folder).data.items()}


def distance_figure(folder: Path, path: Path, c: Context) -> list[Path]:
    return plots.mean_distance_figure(distance_data(folder), path)


def overlay_figure(folder: Path, path: Path, c: Context) -> list[Path] | None:
    """The roster ViT's explanations over their test images, as the study recorded them
    (None for a record made before the overlays were recorded)."""
    rec = AttentionResult.load(folder).data.get(c.roster["vit"], {})
    return attention_study.overlay_figure(rec["overlay"], path) if "overlay" in rec else None


def position_data(folder: Path, c: Context) -> np.ndarray | None:
    """The cosine similarity of the position embeddings (h, w, h, w) of the roster's ViT,
    from its recorded weights beside the attention record (None when they are not there)."""
    res = AttentionResult.load(folder)
    rec = res.data.get(c.roster["vit"])
    if rec is None:
        return None
    weights = Path(folder).parent / Path(rec["run"]["run_dir"]).name / "model.safetensors"
    if not weights.is_file():
        return None
    seed = int(res.config.get("seed", 0))
    model = build(c.spec(c.roster["vit"], seed))
    load_checkpoint(model, weights, c.roster["vit"])
    return attention.position_similarity(model).cpu().numpy()


def position_figure(folder: Path, path: Path, c: Context) -> list[Path] | None:
    sim = position_data(folder, c)
    return None if sim is None else plots.position_similarity_figure(sim, path)


def pooling_data(folder: Path) -> tuple[dict[str, dict[str, Surface]], dict[str, np.ndarray]]:
    """Per pooling of the ViT (``"vit-mini (gap)"``): its landscape's surface and slice, and
    its spectrum's top-k eigenvalues."""
    res = results.load_json(Path(folder) / "pooling.json")
    model = res["config"]["model"]
    surfaces, spectra = {}, {}
    for r in res["results"]:
        label = f"{model} ({r['pool']})"
        surfaces[label] = {"surface": _surface(r["surface"]), "slice": _surface(r["slice"])}
        spectra[label] = Spectrum.from_dict(r["spectrum"]).eigenvalues
    return surfaces, spectra


def pooling_landscape_figure(folder: Path, path: Path, c: Context) -> list[Path]:
    return plots.landscape_figure(pooling_data(folder)[0], path, title="pooling: loss "
                                  "landscapes (augmented training data)")


def pooling_hessian_figure(folder: Path, path: Path, c: Context) -> list[Path]:
    return plots.spectrum_figure(pooling_data(folder)[1], path,
                                 title="pooling: Hessian max eigenvalue spectra")


def search_figure(folder: Path, path: Path, c: Context) -> list[Path]:
    """The build rule's search (Fig. 11): every visited configuration's accuracy, kept or
    not, as the study draws it."""
    res = alternet.AlterNetSearchResult.load(folder)
    title = (f"AlterNet build rule ({res.config.get('base')}, data fraction "
             f"{res.config.get('data_fraction', 1.0):g})")
    return alternet.search_figure(res.data["visited"], path, title)


# the pipeline's figure (its roster template) -> how to draw it from its study's record
ILLUSTRATIONS = {
    "hessian.png": hessian_figure,
    "fourier.png": fourier_figure,
    "subsets_hessian.png": subsets_figure,
    "landscape.png": landscape_figure,
    "trajectory.png": trajectory_figure,
    "attention_{vit}.png": overlay_figure,
    "attention_distance.png": distance_figure,
    "position_{vit}.png": position_figure,
    "pooling_landscape.png": pooling_landscape_figure,
    "pooling_hessian.png": pooling_hessian_figure,
    "alternet_search.png": search_figure,
}


def draw(png: str, folder: Path, figures_dir: Path, c: Context) -> Path | None:
    """The figure ``png`` (a pipeline figure's name at ``c``'s roster), drawn from the record
    in ``folder`` into ``figures_dir``: its path, or None when no drawer knows it or its
    record lacks what it needs."""
    drawer = {t.format(**c.roster): d for t, d in ILLUSTRATIONS.items()}.get(png)
    if drawer is None or not (Path(folder) / "done.json").is_file():
        return None
    path = figures_dir / png
    return path if drawer(Path(folder), path.with_suffix(""), c) else None
