"""Evaluation speed: images/s of the image tower, and the seconds of one full benchmark scoring.

`python -m benchmarks.evaluate [--params P] [--data D] [-n IMAGES]`: on the benchmark under D, with
the ideal run's last checkpoint when there is one (else an untrained model of the configured size,
which is as fast), with 1 and 2 torch threads, on the GPU when there is one. Writes nothing.

The full benchmark is scored twice, one after the other, with the same model and images: by the
reference text path (every text encoded in the caller's order, padded to the full context: open_clip's
plain encode_text) and by the project's (each distinct text once, in batches of similar length, with
the padding cut: what `bindlab evaluate` runs). Both give the same scores; the ratio is the speed-up.
-n: the images the image-tower figure encodes (default all).
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch
from benchmarks import common
from bindlab.evaluate import Encoder, bindlab_encoder, load_benchmark, score_benchmark
from bindlab.model import build_model, encode_text_unpadded, make_tokenizer, model_spec
from bindlab.params import Params
from bindlab.paths import DataPaths
from bindlab.train import images_to_tensor, training_params


class PaddedTexts:
    """The reference text path of an Encoder: every text in the caller's order, repeats included,
    padded to the full context and encoded by open_clip's encode_text. Images as the Encoder does."""

    def __init__(self, enc: Encoder):
        self.enc = enc

    def __getattr__(self, name):
        return getattr(self.enc, name)

    def texts(self, texts: list[str]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), self.enc.batch):
                t = torch.as_tensor(np.asarray(self.enc.tokenizer(texts[i:i + self.enc.batch])), device=self.enc.device)
                out.append(self.enc.model.encode_text(t, normalize=True).float().cpu().numpy())
        return np.concatenate(out)


def bench_eval(params: Params, paths: DataPaths, n: int | None, variant: str = "ideal") -> None:
    _, tp = training_params(params)
    bench = load_benchmark(paths.benchmark)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    last = paths.model(variant, params.seed) / "last.pt"
    for threads in (1, 2):
        torch.set_num_threads(threads)
        if last.exists():
            enc, _ = bindlab_encoder(last, device, tp.eval_batch)
        else:  # timing only: an untrained model of the configured size is as fast
            spec = model_spec(params)
            enc = Encoder(build_model(spec).eval().to(device), make_tokenizer(spec["tokenizer"]),
                          lambda x: images_to_tensor(x, device), device, tp.eval_batch, encode_text_unpadded)
        imgs = bench["images"][: n or len(bench["images"])]
        enc.images(imgs[:64])  # warm-up
        t = time.perf_counter()
        enc.images(imgs)
        img_rate = len(imgs) / (time.perf_counter() - t)
        full = {}
        for name, e in (("reference", PaddedTexts(enc)), ("project", enc)):  # scored alike, one after the other
            t = time.perf_counter()
            s = score_benchmark(e, bench)
            full[name] = time.perf_counter() - t
        print(f"bench eval ({threads} thread{'s' if threads > 1 else ''}): image tower {img_rate:,.0f} images/s; "
              f"full benchmark ({s['n_images_encoded']} images, {len(bench['items'])} items, "
              f"{len(bench['probes'])} probes): {full['reference']:.1f} s with every text padded to the context "
              f"(reference), {full['project']:.1f} s with each distinct text once, padding cut (project's): "
              f"{full['reference'] / full['project']:.2f}x")


def main(argv: list[str] | None = None) -> int:
    p = common.parser("benchmarks.evaluate", __doc__, "images for the image-tower figure (default all)")

    def body(params: Params, paths: DataPaths, args) -> None:
        bench_eval(params, paths, args.n)

    return common.run(p, argv, body)


if __name__ == "__main__":
    sys.exit(main())
