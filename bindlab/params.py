"""The study's parameters: params.yaml, validated on load.

Every error is one line naming the key path and what is allowed, raised as ParamsError before
any stage writes anything.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from bindlab import look
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


ATTRIBUTE_TYPES = ("size", "color", "texture")
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
                                   ("vocab.attributes.texture", self.attributes["texture"], look.TEXTURES)]:
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
        for i, combo in enumerate(self.holdout):
            parse_combo(combo, self.vocab, f"holdout.{i}")
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


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file") from None
    except ParamsError as e:
        raise ParamsError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping of keys, got {type(raw).__name__}")
    try:
        return Params(**raw)
    except ValidationError as e:
        raise ParamsError(f"{path}: {_format_validation_error(e)}") from None
