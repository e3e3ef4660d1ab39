"""Rebuild the painter's default model shipped in the package (gauguin/serve/default_model): train
SPADE on Fashion-MNIST silhouettes from scratch with gauguin.experiments.paint_model.RECIPE, export it
to ONNX with its int8 graph, score it and write the bundle with its manifest (sha256 of every file).
About 10 minutes on 2 cores; an interrupted build resumes. `gauguin paint --retrain` does the same
into the user cache and serves it.

    python scripts/build_paint_model.py [--out gauguin/serve/default_model]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gauguin.experiments.paint_model import build  # noqa: E402
from gauguin.serve.paint_models import SHIPPED  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(SHIPPED))
    build(Path(parser.parse_args().out))


if __name__ == "__main__":
    main()
