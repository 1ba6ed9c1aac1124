"""Would ONNX Runtime run the learned model faster than torch on this CPU?

Usage::

    python benchmarks/onnx_speed.py --model hairnet-v2 --threads 2

Times the network's forward pass on one tile the size a 1280x1024 frame at
2.78 µm/px becomes at the model's 5 µm/px (576 x 720), in torch and in ONNX
Runtime (CPU provider) after exporting the same weights, and checks that the
two outputs agree. Prints the medians of ``--repeat`` runs after a warm-up.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _median_seconds(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hairnet-v2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--shape", type=int, nargs=2, default=(576, 720), metavar=("ROWS", "COLS"))
    a = ap.parse_args()
    try:
        import onnxruntime as ort
    except ImportError:
        sys.exit("onnxruntime is not installed: pip install -e . (it is a project dependency)")
    import numpy as np
    import torch

    from pipeline.learned import load_model

    torch.set_num_threads(a.threads)
    net = load_model(a.model).net.eval()
    x = torch.rand(1, 3, *a.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        t_torch = _median_seconds(lambda: net(x), a.repeat)
        y_torch = net(x).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.onnx"
        torch.onnx.export(net, x, str(path), input_names=["x"], output_names=["y"], opset_version=17,
                          dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "h", 3: "w"}}, dynamo=False)
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}
        t_ort = _median_seconds(lambda: sess.run(None, feed), a.repeat)
        y_ort = sess.run(None, feed)[0]
    print(f"model={a.model} threads={a.threads} input={tuple(x.shape)} torch={torch.__version__} "
          f"onnxruntime={ort.__version__}")
    print(f"forward median: torch {t_torch:.3f} s, onnxruntime {t_ort:.3f} s, ratio {t_torch / t_ort:.2f}x; "
          f"max |difference| of the logits {float(np.abs(y_ort - y_torch).max()):.2e}")


if __name__ == "__main__":
    main()
