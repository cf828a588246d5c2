"""Park & Kim 2022's reproduction declared once (``PIPELINE``): each study it runs, the models
it probes, whether it runs once per training seed (a study behind findings) or once on the
first seed (an illustration), the findings it feeds, the figures it draws into the gallery and
the figures over seeds that read its records. ``studies.reproduce`` plans its steps from this
table (the study sizes per preset are its own), ``studies.findings`` groups F1-F10 by it and
``studies.seedplots`` draws the seed figures it names.

Model lists and captions are templates over the preset's roster (``presets.roster``:
``{vit}``, ``{resnet}``, ``{preresnet}``, ``{alternet}``) and the training seed (``{seed}``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str                   # its result folder and record name (per seed: name-s<seed>)
    models: str                 # the --model list, a roster template ("" : none)
    per_seed: bool              # feeds findings: runs for every seed; else on the first one
    findings: tuple[str, ...] = ()               # the findings its records decide
    figures: tuple[tuple[str, str], ...] = ()    # (png, caption) drawn on the first seed
    seed_figures: tuple[str, ...] = ()           # ``seedplots`` figures reading its records
    study: str | None = None    # the study it runs, where not ``name``
    not_at: tuple[str, ...] = ()                 # presets it is left out of

    @property
    def runs(self) -> str:
        return self.study or self.name


PIPELINE = (
    Stage("hessian", "{vit},{vit}@gap,{resnet},{preresnet},{alternet}", True,
          ("F1", "F2", "F4", "F10"),
          (("hessian.png", "Hessian max-eigenvalue spectra (top-5 by magnitude per mini-batch of "
                           "16 augmented training images, NLL + l2), negative and positive "
                           "panels; seed {seed} (Figs. 1c, 4, 6, 12c)"),),
          ("spectra_seeds",)),
    Stage("alternet", "{alternet},{preresnet},{resnet},{vit}", True, ("F9",),
          seed_figures=("alternet_seeds",)),
    Stage("fourier", "{vit},{resnet},{alternet}", True, ("F6",),
          (("fourier.png", "ΔlogAmplitude of the residual stream against frequency, one curve "
                           "per tap coloured by depth; seed {seed} (Fig. 2a)"),),
          ("depth_seeds",)),
    Stage("variance", "{vit},{resnet},{alternet}", True, ("F8",), seed_figures=("depth_seeds",)),
    Stage("robustness", "{vit},{resnet}", True, ("F7",), seed_figures=("robustness_seeds",)),
    Stage("subsets", "{vit},{resnet}", True, ("F3", "F5"),
          (("subsets_hessian.png", "{vit}'s Hessian spectra per training-set fraction; seed "
                                   "{seed} (Fig. 4; F3)"),),
          ("subsets_seeds",)),
    Stage("landscape", "{vit},{resnet}", False, figures=(
        ("landscape.png", "2-D loss surfaces and 1-D slices along filter-normalised directions, "
                          "NLL + 0.05·Σ‖W‖ on augmented training data (Fig. 1a)"),
        ("trajectory.png", "training trajectory from the cached checkpoints: the paper's polar "
                           "view and Li et al.'s PCA projection (Fig. 1b)"))),
    Stage("attention", "{vit}", False, figures=(
        ("attention_{vit}.png", "rollout, Integrated Gradients and occlusion maps on test "
                                "images"),
        ("attention_distance.png", "mean attention distance of every head against depth (ViT "
                                   "Fig. 7)"),
        ("position_{vit}.png", "cosine similarity of the learned position embeddings (ViT "
                               "Fig. 7)"))),
    Stage("pooling", "{vit}", False, figures=(
        ("pooling_landscape.png", "{vit}'s loss landscapes with a class token and GAP (and "
                                  "SeqPool, MAP at the paper preset) on the same directions' "
                                  "normalisation (Fig. 6)"),
        ("pooling_hessian.png", "the same models' Hessian spectra (Fig. 6)"))),
    # the build rule trains many AlterNets: not at the small preset
    Stage("alternet_search", "", False, figures=(
        ("alternet_search.png", "the build rule: MSA replacements from the end of the network, "
                                "kept (blue) while accuracy improves (Fig. 11)"),),
          study="alternet", not_at=("small",)),
)

# the studies behind findings, run once per seed
PER_SEED = tuple(s.name for s in PIPELINE if s.per_seed)


def stage(name: str) -> Stage:
    return next(s for s in PIPELINE if s.name == name)


def seed_figures() -> tuple[str, ...]:
    """The seed figures in gallery order (the order of the stages that feed them)."""
    return tuple(dict.fromkeys(f for s in PIPELINE for f in s.seed_figures))
