"""The study's parameters: params.yaml, validated on load. Every error is one line naming the key
path and what is allowed, raised as ParamsError before any stage writes anything."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from bindlab import look
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


# The attribute types the renderer knows (bindlab/look.py); a vocabulary names values of exactly these.
ATTRIBUTE_TYPES = ("size", "aspect", "shade", "color", "texture", "outline")
MAX_OBJECTS = 4


class ParamsError(ValueError):
    """A params file that cannot be used; the message names the file and key path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Vocab(_Strict):
    shapes: list[str] = Field(min_length=2)
    # attribute type -> values; insertion order is the word order inside an object phrase
    attributes: dict[str, list[str]] = Field(min_length=1)

    @field_validator("attributes")
    @classmethod
    def _values_nonempty(cls, attrs: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, values in attrs.items():
            if len(values) < 2:
                raise ValueError(f"attribute type {name!r} needs at least 2 values, got {values}")
        return attrs

    @model_validator(mode="after")
    def _words_unique(self) -> "Vocab":
        seen: dict[str, str] = {}
        for kind, words in [("shapes", self.shapes), *self.attributes.items()]:
            for w in words:
                if not w or " " in w or w != w.lower():
                    raise ValueError(f"vocabulary word {w!r} in {kind} must be one lowercase word")
                if w in seen:
                    raise ValueError(f"vocabulary word {w!r} appears in both {seen[w]} and {kind}")
                seen[w] = kind
        # The renderer gives these words their look (bindlab/look.py), so only known ones are allowed.
        if set(self.attributes) != set(ATTRIBUTE_TYPES):
            raise ValueError(f"vocab.attributes: types {sorted(self.attributes)} must be exactly "
                             f"{list(ATTRIBUTE_TYPES)} (any order)")
        for kind, words, known in [("vocab.shapes", self.shapes, look.SHAPES),
                                   ("vocab.attributes.color", self.attributes["color"], look.COLORS),
                                   ("vocab.attributes.texture", self.attributes["texture"], look.TEXTURES),
                                   ("vocab.attributes.aspect", self.attributes["aspect"], look.ASPECTS),
                                   ("vocab.attributes.shade", self.attributes["shade"], look.SHADES),
                                   ("vocab.attributes.outline", self.attributes["outline"], look.OUTLINES)]:
            for w in words:
                if w not in known:
                    raise ValueError(f"{kind}: {w!r} has no rendering; allowed: {', '.join(known)}")
        return self

    @property
    def attribute_types(self) -> list[str]:
        return list(self.attributes)

    @property
    def words(self) -> set[str]:
        return set(self.shapes).union(*self.attributes.values())


def _check_distribution(dist: dict[int, float]) -> dict[int, float]:
    if not dist:
        raise ValueError("needs at least one {count: probability} entry")
    for k, p in dist.items():
        if not 1 <= k <= MAX_OBJECTS:
            raise ValueError(f"object count {k} outside 1..{MAX_OBJECTS} (more do not fit without overlap)")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability {p} for count {k} outside 0..1")
    if abs(sum(dist.values()) - 1.0) > 1e-6:
        raise ValueError(f"probabilities sum to {sum(dist.values())}, not 1")
    return dist


class SceneSet(_Strict):
    n: int = Field(gt=0)
    objects: dict[int, float]

    @field_validator("objects")
    @classmethod
    def _distribution(cls, dist: dict[int, float]) -> dict[int, float]:
        return _check_distribution(dist)


class Render(_Strict):
    image_size: int = Field(ge=16, le=224)
    supersample: int = Field(ge=1, le=8)
    workers: int = Field(ge=1, le=64)
    chunk: int = Field(ge=1)


class Captions(_Strict):
    templates: list[str] = Field(min_length=1)
    # Which attribute types an object phrase names when it names fewer than all (density < types):
    # "random" (a uniformly random subset per object) or a priority list of every attribute type
    # (the first `n` of it are named; checked against vocab.attributes in Params).
    attribute_choice: Literal["random"] | list[str] = "random"

    @field_validator("templates")
    @classmethod
    def _has_slot(cls, templates: list[str]) -> list[str]:
        for t in templates:
            if t.count("{objects}") != 1:
                raise ValueError(f"template {t!r} must contain '{{objects}}' exactly once")
        return templates


class Benchmark(_Strict):
    n: int = Field(gt=0)
    objects: dict[int, float]
    # Attribute types each object phrase of a benchmark caption names (the same random set for every
    # object of an image, drawn per image); items swap only named types (and the shape). null = all.
    density: int | None = Field(default=None, ge=1)

    @field_validator("objects")
    @classmethod
    def _at_least_two(cls, dist: dict[int, float]) -> dict[int, float]:
        _check_distribution(dist)
        if min(dist) < 2:
            raise ValueError("benchmark scenes need at least 2 objects (binding needs a pair)")
        return dist


class Variant(_Strict):
    """The data-property knobs of one variant (see params.yaml for their meaning)."""
    scenes: str
    density: float = Field(ge=0)
    completeness: float = Field(gt=0, le=1)
    objects_mentioned: int | None = Field(default=None, ge=1)
    saliency_bias: float = Field(ge=0, le=1)
    order: Literal["random", "saliency", "left_to_right"]
    hard_negatives: int = Field(ge=0, le=8)
    batch_size: int = Field(ge=2)
    steps: int = Field(ge=1)
    minimal_pairs: float | None = Field(default=None, ge=0, le=1)   # a declared minimum share per type; null: none


class Validation(_Strict):
    """Tolerances of `bindlab validate` (bindlab/validate.py): how far a measured statistic may be
    from the value its variant's declaration implies."""

    # mean attributes per mentioned object: declared density +- this
    density_tolerance: float = Field(default=0.05, gt=0)
    # rates (completeness, most salient mentioned, ...): expected +- max(this, z * standard error)
    fraction_tolerance: float = Field(default=0.02, gt=0)
    z: float = Field(default=4.0, gt=0)
    # each attribute value's count in a scene table within this fraction of an even share
    balance_tolerance: float = Field(default=0.05, gt=0, lt=1)


class VisionCfg(_Strict):
    """open_clip CLIPVisionCfg keys (a subset); image_size must equal render.image_size."""
    image_size: int = Field(ge=16, le=448)
    patch_size: int = Field(ge=2)
    width: int = Field(ge=8)
    layers: int = Field(ge=1)
    head_width: int = Field(ge=8)   # open_clip default 64 gives 2 heads at width 128: set it
    mlp_ratio: float = Field(default=4.0, gt=0)
    # custom: open_clip's own attention (one fused qkv projection into scaled_dot_product_attention);
    # default: torch's nn.MultiheadAttention, which copies more on the CPU
    block_type: Literal["default", "custom"] = "default"


class TextCfg(_Strict):
    """open_clip CLIPTextCfg keys (a subset); vocab_size comes from the tokenizer."""
    context_length: int = Field(ge=4, le=256)
    width: int = Field(ge=8)
    heads: int = Field(ge=1)        # open_clip default 8 gives head width 16 at width 128: set it
    layers: int = Field(ge=1)
    mlp_ratio: float = Field(default=4.0, gt=0)
    block_type: Literal["default", "custom"] = "default"


class ModelCfg(_Strict):
    embed_dim: int = Field(ge=8)
    tokenizer: Literal["words", "openclip"]   # words: closed vocabulary, one token per word
    init_temperature: float = Field(default=0.07, gt=0, le=1)   # logit scale starts at 1 / this (CLIP: 0.07)
    vision: VisionCfg
    text: TextCfg


class Model(_Strict):
    """open_clip-style model configs as data; `name` picks the one `bindlab train` builds."""
    name: str
    configs: dict[str, ModelCfg] = Field(min_length=1)

    @model_validator(mode="after")
    def _known(self) -> "Model":
        if self.name not in self.configs:
            raise ValueError(f"model.name: {self.name!r} is not in model.configs; "
                             f"allowed: {', '.join(self.configs)}")
        return self

    @property
    def config(self) -> ModelCfg:
        return self.configs[self.name]


class Train(_Strict):
    """Optimiser, schedule and bookkeeping of `bindlab train` (batch_size/steps are per variant)."""
    lr: float = Field(gt=0)
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1)   # cosine ends at lr * this
    warmup: int = Field(ge=0)                               # steps of linear warmup
    weight_decay: float = Field(ge=0)                       # on matrices only
    beta2: float = Field(default=0.98, gt=0, lt=1)
    grad_clip: float = Field(default=1.0, ge=0)             # 0 = off
    threads: int = Field(ge=1, le=64)                       # torch CPU threads
    checkpoint_every: int = Field(ge=1)
    log_every: int = Field(default=10, ge=1)
    eval_batch: int = Field(default=512, ge=1)
    # auto: bf16 autocast on a GPU, fp32 on the CPU (bf16 autocast measured slower there for the
    # CPU model: `python -m benchmarks.train`); bf16 on a CPU without bf16 instructions falls back to fp32
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False   # torch.compile the model (measured: small gain, ~1 min compile per run)


class Study(_Strict):
    """The study: the seeds of every variant, and the thresholds of the report's verdicts (bindlab/findings.py)."""
    seeds: list[int] = Field(default=[0], min_length=1)   # dvc.yaml trains each variant once per seed
    ideal: str = "ideal"   # the ideal data properties: the reference of findings 1-3, 5, 6, and finding 7's run
    # finding 7 below 'almost perfect' is 'not reproduced' only on a run trained to its level-off (profile
    # converged: its curve flat over its last fifth); at the shared budget the flat tail of a short cosine
    # schedule cannot be told from a plateau, so there it stays inconclusive
    level_off: bool = False
    # the eval.json metric a verdict is computed from; pairwise has an exact chance level (0.5), which
    # strict's "1 / (negatives + 1)" is not for models that learned little (they score below it)
    metric: str = "i2t_pairwise"
    min_effect: float = Field(default=0.05, gt=0, lt=1)   # smallest difference called an effect
    near_perfect: float = Field(default=0.95, gt=0, le=1)  # "almost perfect binding" (finding 7)
    sees: float = Field(default=0.95, gt=0, le=1)   # a type counts as seen at this replace i2t pairwise
    seed_sd: float = Field(default=0.016, ge=0, lt=1)   # widens a one-seed variant's interval (findings.Numbers)

    @field_validator("seeds")
    @classmethod
    def _unique(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise ValueError(f"seeds must be distinct non-negative integers, got {seeds}")
        return seeds


class Params(_Strict):
    seed: int = Field(ge=0)
    vocab: Vocab
    scene_sets: dict[str, SceneSet] = Field(min_length=1)
    holdout: list[str] = []
    render: Render
    captions: Captions
    benchmark: Benchmark
    base: Variant
    variants: dict[str, dict | None] = Field(min_length=1)
    validation: Validation = Validation()
    model: Model | None = None
    train: Train | None = None
    study: Study = Study()
    # `profile` picks an entry of `profiles` whose keys are deep-merged over this file on load
    # (apply_profile), so `dvc exp run -S profile=quick` switches the whole study without hand edits.
    profile: str = "default"
    profiles: dict[str, dict] = {}
    # The variants a study runs; null = all. Set by a profile (quick): DVC expands every variant's stages
    # from the file, so the subset is what `make study PROFILE=...` gives `dvc exp run` as targets, and
    # what the Prefect `study` flow runs when no variants are named.
    run_variants: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _cross_checks(self) -> "Params":
        n_types = len(self.vocab.attributes)
        for name in self.variants:
            if not name.replace("_", "").isalnum():
                raise ValueError(f"variants.{name}: name must be letters, digits and underscores")
            v = self.variant(name)
            if v.density > n_types:
                raise ValueError(
                    f"variants.{name}.density: {v.density} exceeds the {n_types} attribute types "
                    f"{self.vocab.attribute_types}; allowed 0..{n_types}")
        if self.base.density > n_types:
            raise ValueError(f"base.density: {self.base.density} exceeds the {n_types} attribute types; "
                             f"allowed 0..{n_types}")
        for name in self.run_variants or []:
            if name not in self.variants:
                raise ValueError(f"run_variants: {name!r} is not a variant; allowed: {', '.join(self.variants)}")
        for i, combo in enumerate(self.holdout):
            parse_combo(combo, self.vocab, f"holdout.{i}")
        choice = self.captions.attribute_choice
        if choice != "random" and sorted(choice) != sorted(self.vocab.attribute_types):
            raise ValueError(f"captions.attribute_choice: {choice} must be 'random' or a priority list naming "
                             f"every attribute type once: {self.vocab.attribute_types}")
        if self.benchmark.density is not None and self.benchmark.density > n_types:
            raise ValueError(f"benchmark.density: {self.benchmark.density} exceeds the {n_types} attribute "
                             f"types; allowed 1..{n_types} (or null: all)")
        if self.model is not None:
            need = longest_caption_words(self) + 2  # + start and end tokens
            for name, cfg in self.model.configs.items():
                if cfg.tokenizer == "words" and cfg.text.context_length < need:
                    raise ValueError(
                        f"model.configs.{name}.text.context_length: {cfg.text.context_length} is shorter than the "
                        f"longest possible caption ({need} tokens with start/end: {MAX_OBJECTS} objects x every "
                        f"attribute type, longest template); raise it to at least {need}")
        return self

    def variant(self, name: str) -> Variant:
        """The base with the variant's overrides applied, validated."""
        if name not in self.variants:
            raise ParamsError(f"unknown variant {name!r}; params.yaml defines: {', '.join(self.variants)}")
        overrides = self.variants[name] or {}
        unknown = sorted(set(overrides) - set(Variant.model_fields))
        if unknown:
            raise ValueError(f"variants.{name}.{unknown[0]}: not a variant key; "
                             f"allowed: {', '.join(Variant.model_fields)}")
        try:
            v = Variant(**{**self.base.model_dump(), **overrides})
        except ValidationError as e:
            raise ValueError(_format_validation_error(e, prefix=f"variants.{name}")) from None
        if v.scenes not in self.scene_sets:
            raise ValueError(f"variants.{name}.scenes: {v.scenes!r} is not a scene set; "
                             f"allowed: {', '.join(self.scene_sets)}")
        return v


def longest_caption_words(params: "Params") -> int:
    """Words of the longest caption the vocabulary allows: MAX_OBJECTS objects, each 'a', every
    attribute type and the shape, joined by 'and', in the template with the most words."""
    per_object = 2 + len(params.vocab.attributes)
    template = max(len(t.replace("{objects}", " ").split()) for t in params.captions.templates)
    return template + MAX_OBJECTS * per_object + (MAX_OBJECTS - 1)


def parse_combo(combo: str, vocab: Vocab, where: str) -> tuple[str, str, str]:
    """'red triangle' -> ('color', 'red', 'triangle')."""
    words = combo.split()
    if len(words) != 2 or words[1] not in vocab.shapes:
        raise ValueError(f"{where}: {combo!r} must be '<attribute value> <shape>', "
                         f"shapes: {', '.join(vocab.shapes)}")
    for attr, values in vocab.attributes.items():
        if words[0] in values:
            return attr, words[0], words[1]
    raise ValueError(f"{where}: {words[0]!r} is not an attribute value; allowed: "
                     f"{', '.join(sorted(set().union(*vocab.attributes.values())))}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that rejects duplicate mapping keys (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ParamsError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                              f"(first at line {seen[key] + 1})")
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _format_validation_error(e: ValidationError, prefix: str = "") -> str:
    err = e.errors()[0]
    path = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(err["loc"]))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    allowed = ""
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        allowed = f"; allowed: {ctx['expected']}"
    got = "" if err["type"] in ("missing",) else f" (got {err.get('input')!r})"
    if err["type"] == "extra_forbidden" or isinstance(err.get("input"), dict):
        got = ""
    return f"{path}: {msg}{allowed}{got}" if path else f"{msg}{allowed}"


# Keys a profile may not override: DVC expands dvc.yaml's stages from the raw file (variant names,
# their scene sets, the seeds), so a profile changing them would split DVC's view from the stages'.
_FIXED_BY_DVC = ("profile", "profiles", "study")


def _merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in over.items()}}
    return over


def apply_profile(raw: dict, path: str | Path = "params.yaml") -> dict:
    """Deep-merge `profiles[profile]` over the file (dicts merge key by key, other values replace)."""
    name = raw.get("profile", "default")
    profiles = raw.get("profiles") or {}
    if name not in profiles:
        if name == "default":
            return raw
        raise ParamsError(f"{path}: profile: {name!r} is not in profiles; allowed: "
                          f"{', '.join(['default', *profiles])}")
    over = profiles[name] or {}
    if not isinstance(over, dict):
        raise ParamsError(f"{path}: profiles.{name}: must be a mapping of keys to override")
    for key in _FIXED_BY_DVC:
        if key in over:
            raise ParamsError(f"{path}: profiles.{name}.{key}: a profile cannot override {key!r} "
                              f"(dvc.yaml reads it from the file itself)")
    for v, knobs in (over.get("variants") or {}).items():
        if v not in (raw.get("variants") or {}):
            raise ParamsError(f"{path}: profiles.{name}.variants.{v}: not a variant of the file; "
                              f"a profile can only change existing variants")
        if isinstance(knobs, dict) and "scenes" in knobs:
            raise ParamsError(f"{path}: profiles.{name}.variants.{v}.scenes: a profile cannot change "
                              f"a variant's scene set (dvc.yaml reads it from the file itself)")
    return _merge(raw, over)


def load_params(path: str | Path = "params.yaml", profile: str | None = None) -> Params:
    """params.yaml validated, its profile merged over it; `profile`: that one instead of the file's."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file") from None
    except UnicodeDecodeError as e:
        raise ParamsError(f"{path}: not UTF-8 text (byte {e.start}); restore it from git") from None
    except ParamsError as e:
        raise ParamsError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        # PyYAML's message quotes the source over several lines; where it knows the spot, say just that
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark and problem else f": {e}"
        raise ParamsError(f"{path}: not valid YAML{where}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping of keys, got {type(raw).__name__}")
    if profile is not None:
        raw["profile"] = profile
    raw = apply_profile(raw, path)
    try:
        return Params(**raw)
    except ValidationError as e:
        raise ParamsError(f"{path}: {_format_validation_error(e)}") from None
