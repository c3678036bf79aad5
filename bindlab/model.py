"""The CLIP model (open_clip's `CLIP`, built from a config in params.yaml), its tokenizer, and its
checkpoints.

A checkpoint is self-describing: it stores the model config and the tokenizer spec, so
`load_model` needs nothing else. `read_checkpoint` checks one against the model its spec builds,
which is why the checkpoint reader lives here and not with the other readers in bindlab/contracts.py
(whose key tables CHECKPOINT and RESUME it uses).
"""
from __future__ import annotations

import math
import pickle
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from open_clip.tokenizer import SimpleTokenizer
from open_clip.transformer import text_global_pool

from bindlab.contracts import CHECKPOINT, RESUME, check_keys, fail, short_error
from bindlab.errors import StageError
from bindlab.params import ModelCfg, Params
from bindlab.wording import function_words

PAD, SOT, EOT, UNK = "<pad>", "<sot>", "<eot>", "<unk>"
SPECIALS = [PAD, SOT, EOT, UNK]   # ids 0..3; EOT id 2 is what text pooling looks for


class WordTokenizer:
    """One token per word of the closed vocabulary: captions are short and every word is known."""

    kind = "words"

    def __init__(self, words: list[str], context_length: int):
        self.words = list(words)
        self.context_length = context_length
        self.ids = {w: i for i, w in enumerate(self.words)}
        self.vocab_size = len(self.words)
        self.eot_id = self.ids[EOT]

    @classmethod
    def for_params(cls, params: Params, context_length: int) -> "WordTokenizer":
        return cls(SPECIALS + sorted(params.vocab.words | function_words(params)), context_length)

    def spec(self) -> dict:
        return {"kind": self.kind, "words": self.words, "context_length": self.context_length}

    def __call__(self, texts: list[str]) -> np.ndarray:
        """(n, context_length) int64: SOT, words, EOT, padding; truncated like open_clip (EOT kept)."""
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        unk, n = self.ids[UNK], self.context_length - 2
        for i, text in enumerate(texts):
            toks = [self.ids.get(w, unk) for w in text.lower().split()][:n]
            out[i, :len(toks) + 2] = [self.ids[SOT], *toks, self.eot_id]
        return out


class OpenClipTokenizer:
    """open_clip's BPE tokenizer (ships its vocabulary, works offline); EOT has the highest id."""

    kind = "openclip"

    def __init__(self, context_length: int):
        self._tok = SimpleTokenizer(context_length=context_length)
        self.context_length = context_length
        self.vocab_size = len(self._tok.encoder)
        self.eot_id = self._tok.eot_token_id

    def spec(self) -> dict:
        return {"kind": self.kind, "context_length": self.context_length}

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self._tok(texts).numpy().astype(np.int64)


def make_tokenizer(spec: dict):
    if spec["kind"] == "words":
        return WordTokenizer(spec["words"], spec["context_length"])
    return OpenClipTokenizer(spec["context_length"])


def model_spec(params: Params, cfg: ModelCfg | None = None) -> dict:
    """Everything needed to rebuild the model: open_clip vision/text configs and the tokenizer."""
    cfg = cfg or params.model.config
    ctx = cfg.text.context_length
    tok = (WordTokenizer.for_params(params, ctx) if cfg.tokenizer == "words" else OpenClipTokenizer(ctx))
    text = cfg.text.model_dump()
    # Pool at the first EOT explicitly: the default argmax pooling assumes EOT has the highest id.
    text.update(vocab_size=tok.vocab_size, pool_type="eos", eos_id=tok.eot_id, pad_id=0)
    return {"embed_dim": cfg.embed_dim, "vision": cfg.vision.model_dump(), "text": text,
            "tokenizer": tok.spec(), "init_temperature": cfg.init_temperature}


def build_model(spec: dict):
    """A freshly initialised open_clip CLIP (the caller seeds torch first)."""
    # output_dict: forward returns logit_scale already exponentiated, which is what ClipLoss takes
    return CLIP(embed_dim=spec["embed_dim"], vision_cfg=dict(spec["vision"]), text_cfg=dict(spec["text"]),
                init_logit_scale=math.log(1 / spec.get("init_temperature", 0.07)), output_dict=True)


def encode_text_unpadded(model, text):
    """open_clip CLIP.encode_text on tokens cut to the batch's longest caption (+ EOT). Exact: the
    text tower is causal and pools at the first EOT, so padding after it never reaches the output;
    cutting it saves the text tower's work on padding (most of it for the short-caption variants)."""
    n = int((text != 0).sum(1).max())    # 0 is <pad>; every caption has SOT ... EOT
    text = text[:, :n]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(text).to(cast_dtype) + model.positional_embedding[:n].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
    x = text_global_pool(model.ln_final(x), text, model.text_pool_type, eos_token_id=model.text_eos_id)
    x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection
    return F.normalize(x, dim=-1)


def read_checkpoint(path, made_by: str, device: str = "cpu", resume: bool = False) -> dict:
    """A bindlab checkpoint: loadable with weights_only=True, self-describing (model_spec), and its
    weights fit the model its model_spec builds. `resume`: also the optimiser state `train` needs."""
    path = Path(path)
    if not path.exists():
        raise StageError(f"{path}: no such checkpoint; run `{made_by}` first")
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's weights-only refusal is a paragraph of advice; the fact is in its "WeightsUnpickler error"
        found = re.search(r"WeightsUnpickler error:\s*(.+?)(?: was not an allowed global|\.\s|\n|$)", str(e))
        reason = found.group(1).strip() if found else short_error(e)
        fail(path, f"not a loadable checkpoint (refused by torch's weights-only loader: {reason})", made_by)
    except Exception as e:  # noqa: BLE001 - truncated zip, empty file, ...: say which file
        fail(path, f"not a loadable checkpoint ({short_error(e)})", made_by)
    if not isinstance(ck, dict) or "model_spec" not in ck:
        raise StageError(f"{path}: not a bindlab checkpoint (no model_spec); for an open_clip model "
                         f"pass --model NAME as well")
    check_keys(path, ck, CHECKPOINT | (RESUME if resume else {}), made_by)
    if resume and not isinstance(ck.get("rng_torch"), torch.Tensor):
        fail(path, "lacks its RNG state (rng_torch)", made_by)
    _check_weights(path, ck, made_by)
    return ck


def _check_weights(path, ck: dict, made_by: str) -> None:
    """The weights have exactly the names and shapes of the model that ck's model_spec builds."""
    try:
        with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the caller's RNG alone
            expected = build_model(ck["model_spec"]).state_dict()
    except Exception as e:  # noqa: BLE001 - a damaged spec fails in open_clip in many ways
        fail(path, f"its model_spec does not build a model ({short_error(e)})", made_by)
    got = ck["model"]
    for name, t in expected.items():
        w = got.get(name)
        if not isinstance(w, torch.Tensor):
            fail(path, f"weights lack {name}", made_by)
        if tuple(w.shape) != tuple(t.shape) or not w.dtype.is_floating_point:
            fail(path, f"weights {name} are {w.dtype} {tuple(w.shape)} where its model_spec needs "
                       f"{t.dtype} {tuple(t.shape)}", made_by)
    extra = sorted(set(got) - set(expected))
    if extra:
        fail(path, f"weights {extra[0]} (and {len(extra) - 1} more) are not in the model of its model_spec", made_by)


def load_model(path, device: str = "cpu", made_by: str = "bindlab train --fresh"):
    """(model, tokenizer, checkpoint dict) from a bindlab checkpoint, loaded with weights_only=True and
    checked (`read_checkpoint`); `made_by`: the command that regenerates it, for the error."""
    ck = read_checkpoint(path, made_by, device)
    model = build_model(ck["model_spec"]).to(device)
    model.load_state_dict(ck["model"])
    model.eval()
    return model, make_tokenizer(ck["model_spec"]["tokenizer"]), ck


def n_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
