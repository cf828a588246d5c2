"""The lasting benchmarks, each run as ``python -m benchmarks.<name> [--device cpu|cuda]``;
each measures ours and the peer side by side in one run, writes a record to
``benchmarks/results/`` and declares its headline metric and goal (``HEADLINES``), which
``python -m benchmarks.render`` tabulates in RESULTS.md (one row per benchmark and machine,
the latest record)."""

# name -> what it compares
BENCHMARKS = {
    "hessian_vs_peers": "top-5 eigenpairs against a reference cost, and PyHessian and "
                        "curvlinops at equal accuracy",
    "trace_vs_pyhessian": "trace at an equal HVP budget, Hutch++ vs PyHessian",
    "hvp_backends": "double backward vs forward-over-reverse HVPs, and batched products",
    "train_throughput": "training images/s, ours vs timm / torchvision",
    "landscape_cost": "a loss surface against its lower bound, ours vs loss-landscapes",
    "hessian_scale": "the solver's overhead over its HVPs, and vit-b's top-5 memory",
    "distributed_scaling": "HVPs under torchrun, 2 processes vs 1",
    "cct_quick": "CCT's accuracy after a 10-minute CPU budget",
    "cli_latency": "the command's help, model list and argument errors against starting torch",
}
