"""The study's params: profiles merged on load (no hand edits), seeds, and their errors."""
from __future__ import annotations

import pytest
from tiny import REPO, tiny_params_dict, write_params


def test_profiles_of_params_yaml(tmp_path):
    from bindlab.params import load_params
    raw = tiny_params_dict()
    default = load_params(write_params(tmp_path, raw))
    assert default.profile == "default" and default.study.seeds == [0]
    raw["profile"] = "quick"
    quick = load_params(write_params(tmp_path, raw))
    assert quick.scene_sets["train"].n == raw["profiles"]["quick"]["scene_sets"]["train"]["n"]
    assert quick.variant("ideal").steps == raw["profiles"]["quick"]["base"]["steps"]
    # a merge, not a replacement: the variant keeps its own knobs
    assert quick.variant("completeness_50_batch_256").completeness == 0.5
    assert quick.vocab == default.vocab
    raw["profile"] = "gpu"
    gpu = load_params(write_params(tmp_path, raw))
    assert gpu.model.name == "gpu_vit" and gpu.render.image_size == gpu.model.config.vision.image_size


def test_every_variant_names_its_scene_set():
    """dvc.yaml wires a variant's stages to `${item.scenes}`, so params.yaml must spell it."""
    import yaml
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert all("scenes" in (knobs or {}) for knobs in raw["variants"].values())


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(profile="fast"), "profile: 'fast' is not in profiles"),
    (lambda r: r["profiles"]["quick"].update(study={"seeds": [1]}), "profiles.quick.study: a profile cannot"),
    (lambda r: r["profiles"]["quick"].update(variants={"nope": {"density": 1}}), "profiles.quick.variants.nope"),
    (lambda r: r["profiles"]["quick"].update(variants={"ideal": {"scenes": "objects_2"}}), "ideal.scenes"),
    (lambda r: r["profiles"]["quick"]["base"].update(stepz=3), "base.stepz: unknown key"),
    (lambda r: r["study"].update(seeds=[0, 0]), "seeds must be distinct"),
])
def test_profile_errors_name_the_key(tmp_path, change, message):
    from bindlab.params import ParamsError, load_params
    raw = tiny_params_dict()
    raw["profile"] = "quick"
    change(raw)
    with pytest.raises(ParamsError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_params(write_params(tmp_path, raw))
