"""params.yaml is validated on load: each bad input gets one line naming the key, and nothing is written."""
from __future__ import annotations

import pytest

from bindlab.cli import main
from bindlab.params import ParamsError, load_params
from tiny import tiny_params_dict, write_params


def _break(raw: dict, how: str) -> dict:
    if how == "unknown_key":
        raw["render"]["colour_depth"] = 8
    elif how == "wrong_type":
        raw["render"]["image_size"] = "big"
    elif how == "density_too_high":
        raw["variants"]["ideal"] = {"density": 7}
    elif how == "probability":
        raw["variants"]["ideal"] = {"saliency_bias": 1.5}
    elif how == "empty_vocab":
        raw["vocab"]["attributes"]["color"] = []
    elif how == "override_unknown":
        raw["variants"]["ideal"] = {"densty": 2}
    elif how == "unknown_scene_set":
        raw["variants"]["ideal"] = {"scenes": "nowhere"}
    elif how == "distribution":
        raw["scene_sets"]["train"]["objects"] = {2: 0.5, 3: 0.6}
    elif how == "holdout":
        raw["holdout"] = ["red dodecahedron"]
    return raw


CASES = {
    "unknown_key": ("render.colour_depth", "unknown key"),
    "wrong_type": ("render.image_size", "integer"),
    "density_too_high": ("variants.ideal.density", "allowed 0..6"),
    "probability": ("variants.ideal.saliency_bias", "less than or equal to 1"),
    "empty_vocab": ("vocab.attributes", "at least 2 values"),
    "override_unknown": ("variants.ideal.densty", "allowed: scenes, density"),
    "unknown_scene_set": ("variants.ideal.scenes", "allowed: train"),
    "distribution": ("scene_sets.train.objects", "sum to"),
    "holdout": ("holdout.0", "shapes: circle"),
}


@pytest.mark.parametrize("how", CASES)
def test_bad_params_name_the_key_and_write_nothing(tmp_path, capsys, how):
    path = write_params(tmp_path, _break(tiny_params_dict(), how))
    key, allowed = CASES[how]
    with pytest.raises(ParamsError) as err:
        load_params(path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and key in message and allowed in message, message

    data = tmp_path / "data"
    assert main(["sample", "--scenes", "train", "--params", str(path), "--data", str(data)]) == 2
    assert key in capsys.readouterr().err
    assert not data.exists()


def test_duplicate_variant_name_is_an_error(tmp_path):
    text = write_params(tmp_path, tiny_params_dict()).read_text()
    text = text.replace("variants:\n", "variants:\n  density_1: {density: 2}\n", 1)
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match=r"duplicate key 'density_1' at line \d+"):
        load_params(tmp_path / "params.yaml")


def test_unknown_variant_lists_the_defined_ones(tiny_params):
    with pytest.raises(ParamsError, match="unknown variant 'nope'.*ideal"):
        tiny_params.variant("nope")


def test_missing_params_file(tmp_path, capsys):
    assert main(["sample", "--scenes", "train", "--params", str(tmp_path / "none.yaml")]) == 2
    assert "no such params file" in capsys.readouterr().err


def test_repository_params_are_valid():
    from tiny import REPO
    params = load_params(REPO / "params.yaml")
    for name in params.variants:
        params.variant(name)


@pytest.mark.parametrize("edit, key, hint", [
    (lambda r: r["captions"].update(attribute_choice=["color", "size"]), "captions.attribute_choice", "every attribute type once"),
    (lambda r: r["captions"].update(attribute_choice="salient"), "captions.attribute_choice", "random"),
    (lambda r: r["benchmark"].update(density=7), "benchmark.density", "allowed 1..6"),
    (lambda r: r["model"]["configs"]["cpu_vit"]["text"].update(context_length=32),
     "model.configs.cpu_vit.text.context_length", "raise it to at least 41"),
    (lambda r: r["vocab"]["attributes"].update(outline=["unbordered", "dashed"]), "vocab.attributes.outline",
     "'dashed' has no rendering"),
    (lambda r: r["vocab"]["attributes"].pop("shade"), "vocab.attributes", "must be exactly"),
], ids=["priority_incomplete", "choice_unknown", "bench_density", "context_short", "unknown_outline", "type_missing"])
def test_attribute_keys_are_validated(tmp_path, edit, key, hint):
    import yaml
    from bindlab.params import ParamsError, load_params
    from tiny import REPO
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    edit(raw)
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ParamsError) as err:
        load_params(f)
    msg = str(err.value)
    assert key in msg and hint in msg and "\n" not in msg, msg
