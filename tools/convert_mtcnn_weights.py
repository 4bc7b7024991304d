"""Convert the MTCNN weights shipped in facenet-pytorch's PyPI wheel to safetensors.

Usage:
    pip download --no-deps facenet-pytorch==2.6.0 -d /tmp/fnp
    python tools/convert_mtcnn_weights.py /tmp/fnp/facenet_pytorch-2.6.0-py3-none-any.whl

Writes src/facedist/weights/{pnet,rnet,onet}.safetensors and prints their SHA-256, which go into
the model registry (src/facedist/models.py). The wheel is read as a zip; facenet-pytorch is never
imported, so its torch<2.3 pin does not matter.
"""
from __future__ import annotations

import hashlib
import io
import sys
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

OUT_DIR = Path(__file__).resolve().parents[1] / "src" / "facedist" / "weights"


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        for net in ("pnet", "rnet", "onet"):
            raw = zf.read(f"facenet_pytorch/data/{net}.pt")
            state = torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
            tensors = {k: v.contiguous().float() for k, v in state.items()}
            path = OUT_DIR / f"{net}.safetensors"
            save_file(tensors, str(path), metadata={"source": "facenet-pytorch 2.6.0 (MIT)"})
            print(net, hashlib.sha256(path.read_bytes()).hexdigest())


if __name__ == "__main__":
    main(sys.argv[1])
