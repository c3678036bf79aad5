"""`bindlab chance --seed S`: the measured chance level of seed S, once for every variant.

eval.json's `chance_measured` scores the run's own initialisation (torch seeded with the run's seed,
`untrained_chance` in bindlab/evaluate.py). That model depends on the seed and the model spec (the
model config and the word tokenizer, from params), not on the variant, so the study measures it
once per seed here: data/chance/seedS.json holds the dict eval.json's `chance_measured` would hold
and what it was computed for (`chance_basis`). `bindlab evaluate` copies it from there when that
matches the checkpoint it evaluates, and measures it itself otherwise.
"""
from __future__ import annotations

import torch

from bindlab.evaluate import Encoder, chance_basis, load_benchmark, spec_image_fn, untrained_chance
from bindlab.io import write_json
from bindlab.model import encode_text_unpadded, make_tokenizer, model_spec
from bindlab.params import Params
from bindlab.paths import DataPaths
from bindlab.train import set_threads, training_params


def chance_stage(params: Params, paths: DataPaths, seed: int | None = None, threads: int | None = None) -> dict:
    """Measure seed `seed`'s chance level as `bindlab evaluate` would for a run of the params' model
    (the same tokenizer, image input, text encoding, batch and threads); writes data/chance/seedS.json."""
    _, tp = training_params(params)
    seed = params.seed if seed is None else seed
    spec = model_spec(params)   # what `bindlab train` stores in its checkpoints
    set_threads(threads or tp.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bench = load_benchmark(paths.benchmark, params.benchmark.n)
    # untrained_chance builds the model itself; this encoder lends it everything else (no model of its own)
    enc = Encoder(None, make_tokenizer(spec["tokenizer"]), spec_image_fn(spec, device), device, tp.eval_batch,
                  encode_text_unpadded)
    result = chance_basis(spec, seed, tp.eval_batch, paths.benchmark) | {
        "chance_measured": untrained_chance(enc, spec, seed, bench)}
    write_json(paths.chance(seed), result)
    return result
