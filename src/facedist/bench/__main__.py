"""`python -m facedist.bench VARIANT INPUTS VDIR N WEIGHTS INTERVAL`: one variant in a process
of its own, as `facedist bench` starts it."""
import sys
from pathlib import Path

from . import run_variant

variant, inputs, vdir, n, weights, interval = sys.argv[1:7]
run_variant(variant, Path(inputs), Path(vdir), int(n), weights, float(interval))
