"""How a caption is worded: the object phrase, the template, the words a caption may use.

The caption builder (bindlab/captions.py), the benchmark, the statistics, the renderer's contact
sheets and the tokenizer all word captions the same way; this module is that one way.
"""
from __future__ import annotations

import polars as pl

from bindlab.params import Params

SEPARATOR = " and "


def describe(obj: dict, types: list[str]) -> str:
    """'a small red circle': the object's values for `types` (vocab order) and its shape."""
    # Always "a" (never "an"): a swap then keeps exactly the same bag of words.
    return "a " + " ".join([obj[t] for t in types] + [obj["shape"]])


def caption_text(phrases: list[str], template: str) -> str:
    return template.replace("{objects}", SEPARATOR.join(phrases))


def function_words(params: Params) -> set[str]:
    """Words a caption may use besides the vocabulary: articles, 'and', the templates' words."""
    words = {"a", "and"}
    for t in params.captions.templates:
        words.update(t.replace("{objects}", " ").split())
    return words


def objects_of(scenes: pl.DataFrame) -> dict[int, list[dict]]:
    """scene_id -> its objects as dicts, in object order."""
    out: dict[int, list[dict]] = {}
    for row in scenes.sort(["scene_id", "obj"]).iter_rows(named=True):
        out.setdefault(row["scene_id"], []).append(row)
    return out


def full_captions(params: Params, scenes: pl.DataFrame) -> list[str]:
    """The complete caption (every object, every attribute, object order) of each scene, first template."""
    types = params.vocab.attribute_types
    return [caption_text([describe(o, types) for o in objs], params.captions.templates[0])
            for _, objs in sorted(objects_of(scenes).items())]


def matches(obj: dict, desc: dict) -> bool:
    """Does the object fit the (partial) description {attribute type or 'shape': value}?"""
    return all(obj[k] == v for k, v in desc.items())


def swap_is_false(objs: list[dict], desc_a: dict, desc_b: dict) -> bool:
    """A swapped caption is certainly false of the image if one swapped phrase fits no object."""
    return not any(matches(o, desc_a) for o in objs) or not any(matches(o, desc_b) for o in objs)
