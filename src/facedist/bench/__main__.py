"""`python -m facedist.bench VARIANT INPUTS VDIR N WEIGHTS INTERVAL`: one variant in a process
of its own, as `facedist bench` starts it."""
import sys
from pathlib import Path

from . import run_variant

variant, inputs, vdir, n, weights, interval = sys.argv[1:7]
ours = variant.startswith("facedist")
if ours:  # facedist runs as `facedist run` does (cli.program); the study's and peers' untouched
    from .. import tune_process

    tune_process()
run_variant(variant, Path(inputs), Path(vdir), int(n), weights, float(interval))
if ours:
    from ..memory import freeze_loaded

    freeze_loaded()  # as cli.program does before the process ends
