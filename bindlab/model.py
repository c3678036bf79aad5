"""The CLIP model (open_clip's `CLIP`, built from a config in params.yaml) and its tokenizer.

A checkpoint is self-describing: it stores the model config and the tokenizer spec, so
`load_model` needs nothing else. torch and open_clip are imported inside the functions.
"""
from __future__ import annotations

import numpy as np

from bindlab.params import ModelCfg, Params

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
        from bindlab.captions import function_words
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
        from open_clip.tokenizer import SimpleTokenizer
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
    import math
    from open_clip.model import CLIP
    # output_dict: forward returns logit_scale already exponentiated, which is what ClipLoss takes
    return CLIP(embed_dim=spec["embed_dim"], vision_cfg=dict(spec["vision"]), text_cfg=dict(spec["text"]),
                init_logit_scale=math.log(1 / spec.get("init_temperature", 0.07)), output_dict=True)


def encode_text_unpadded(model, text):
    """open_clip CLIP.encode_text on tokens cut to the batch's longest caption (+ EOT). Exact: the
    text tower is causal and pools at the first EOT, so padding after it never reaches the output;
    cutting it saves the text tower's work on padding (most of it for the short-caption variants)."""
    import torch
    import torch.nn.functional as F
    from open_clip.transformer import text_global_pool
    n = int((text != 0).sum(1).max())    # 0 is <pad>; every caption has SOT ... EOT
    text = text[:, :n]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(text).to(cast_dtype) + model.positional_embedding[:n].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
    x = text_global_pool(model.ln_final(x), text, model.text_pool_type, eos_token_id=model.text_eos_id)
    x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection
    return F.normalize(x, dim=-1)


def load_model(path, device: str = "cpu", made_by: str = "bindlab train --fresh"):
    """(model, tokenizer, checkpoint dict) from a bindlab checkpoint, loaded with weights_only=True and
    checked (bindlab/contracts.py); `made_by`: the command that regenerates it, for the error."""
    from bindlab.contracts import read_checkpoint
    ck = read_checkpoint(path, made_by, device)
    model = build_model(ck["model_spec"]).to(device)
    model.load_state_dict(ck["model"])
    model.eval()
    return model, make_tokenizer(ck["model_spec"]["tokenizer"]), ck


def n_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
