"""Training: the loss goes down, an interrupted run resumes to identical weights, hard-negative
batches hold exactly the declared negatives, bad input fails clearly before writing."""
from __future__ import annotations

import math
import shutil

import numpy as np
import polars as pl
import pytest
import torch

from bindlab import timing
from bindlab.cli import main
from bindlab.errors import StageError
from bindlab.params import ParamsError, load_params
from bindlab.paths import DataPaths
from bindlab.train import TrainData, lr_factor, train_stage
from tiny import copy_study, tiny_raw, write_params


@pytest.fixture(scope="module")
def tiny(tiny_study, tmp_path_factory):
    """A copy of the session's tiny study (a test here trains `hn2` into it)."""
    params, paths, _ = copy_study(tiny_study, tmp_path_factory.mktemp("train"))
    return params, paths


def _params_with(tmp_path, **train_over):
    raw = tiny_raw()
    for k, v in train_over.items():
        section, key = k.split("__")
        raw[section][key] = v
    return load_params(write_params(tmp_path, raw))


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_loss_goes_down(tiny, tmp_path):
    params, paths = tiny
    p = _params_with(tmp_path, base__steps=150, train__checkpoint_every=150)
    out = DataPaths(tmp_path / "data")
    for d in ("images", "captions"):
        (out.root / d).parent.mkdir(parents=True, exist_ok=True)
        (out.root / d).symlink_to(paths.root / d)
    train_stage(p, out, "ideal", progress=False, require_validation=False)
    log = pl.read_csv(out.metrics("ideal", 0) / "train.tsv", separator="\t")
    assert log["step"].to_list() == list(range(1, 151))
    # below log(batch), the loss of a model that scores every pair alike: it learned something
    assert log["loss"].tail(10).mean() < math.log(32) - 0.2 < log["loss"].head(3).mean()
    # wall-clock figures live in the run's timing record, not in the hashed train.tsv
    assert log.columns == ["step", "loss", "lr", "logit_scale"]
    times = timing.read(out.timing(out.metrics("ideal", 0)))["train"]
    assert [r[0] for r in times["log"]] == list(range(1, 151)) and list(times["checkpoints"]) == ["150"]
    assert all(0 <= r[2] < 1 and r[1] > 0 for r in times["log"]) and times["seconds"] == times["log"][-1][3]
    assert sorted(p.name for p in out.model("ideal", 0).iterdir()) == ["last.pt", "weights_step000150.pt"]


def test_resume_after_interruption_gives_identical_weights(tiny, tmp_path):
    params, paths = tiny  # 6 steps, checkpoint every 3
    a = DataPaths(tmp_path / "a")
    b = DataPaths(tmp_path / "b")
    for root in (a, b):
        for d in ("images", "captions"):
            (root.root / d).parent.mkdir(parents=True, exist_ok=True)
            (root.root / d).symlink_to(paths.root / d)
    train_stage(params, a, "ideal", progress=False, require_validation=False)
    # interrupted after step 4: the checkpoint of step 3 survives, step 4 is lost and redone
    train_stage(params, b, "ideal", progress=False, require_validation=False, _stop_after=4)
    assert torch.load(b.model("ideal", 0) / "last.pt", weights_only=True)["step"] == 3
    train_stage(params, b, "ideal", progress=False, require_validation=False)
    wa, wb = _weights(a.model("ideal", 0) / "last.pt"), _weights(b.model("ideal", 0) / "last.pt")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # the timing record follows the resumed run: a mark per checkpoint, seconds growing
    marks = timing.read(b.timing(b.metrics("ideal", 0)))["train"]["checkpoints"]
    assert list(marks) == ["3", "6"] and 0 < marks["3"] < marks["6"]
    # and a fresh run of the same params gives the same bytes again (deterministic by seed): every
    # checkpoint file and train.tsv, nothing run-dependent in them
    train_stage(params, b, "ideal", progress=False, require_validation=False, fresh=True)
    for name in ("last.pt", "weights_step000003.pt", "weights_step000006.pt"):
        assert (a.model("ideal", 0) / name).read_bytes() == (b.model("ideal", 0) / name).read_bytes(), name
    assert (a.metrics("ideal", 0) / "train.tsv").read_bytes() == (b.metrics("ideal", 0) / "train.tsv").read_bytes()
    # the log is continuous across the interruption
    log = pl.read_csv(a.metrics("ideal", 0) / "train.tsv", separator="\t")
    assert log["step"].to_list() == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_after_sigkill_gives_identical_weights(tiny, tmp_path, precision):
    """The fast path (flush-to-zero, fused AdamW, open_clip's custom attention; bf16 autocast where the
    CPU has it): `bindlab train` killed with SIGKILL mid-run, then rerun, ends with the weights of an
    uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time
    _, paths = tiny
    raw = tiny_raw(steps=40)
    raw["train"].update(checkpoint_every=5, precision=precision)
    runs = {}
    for name in ("whole", "killed"):
        folder = tmp_path / name
        folder.mkdir()
        pfile = write_params(folder, raw)
        for d in ("images", "captions"):
            (folder / "data").mkdir(exist_ok=True)
            (folder / "data" / d).symlink_to(paths.root / d)
        runs[name] = (folder, [sys.executable, "-m", "bindlab.cli", "train", "--params", str(pfile), "--data",
                               str(folder / "data"), "--variant", "ideal", "--unvalidated", "--no-progress"])
    folder, cmd = runs["whole"]
    whole_log = folder / "run.log"
    with whole_log.open("w") as out:   # the uninterrupted run, beside the one that is killed
        whole = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        folder, cmd = runs["killed"]
        last = folder / "data" / "models" / "ideal" / "seed0" / "last.pt"
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if last.exists() and torch.load(last, weights_only=True)["step"] >= 10:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed; give it more steps"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at = torch.load(last, weights_only=True)["step"]
        assert 10 <= killed_at < 40
        subprocess.run(cmd, check=True, capture_output=True)
        assert whole.wait(timeout=300) == 0, whole_log.read_text()[-3000:]
    finally:
        if whole.poll() is None:   # a failure above: the uninterrupted run is not needed any more
            whole.kill()
            whole.wait()
    wa = _weights(runs["whole"][0] / "data" / "models" / "ideal" / "seed0" / "last.pt")
    wb = _weights(last)
    assert all(torch.equal(wa[k], wb[k]) for k in wa), f"weights differ after a kill at step {killed_at}"


def test_text_without_padding_matches_the_open_clip_text_tower(tiny):
    from bindlab.model import build_model, encode_text_unpadded, make_tokenizer, model_spec
    params, _ = tiny
    spec = model_spec(params)
    torch.manual_seed(0)
    model = build_model(spec).eval()
    tokens = torch.from_numpy(make_tokenizer(spec["tokenizer"])(["a red circle", "a picture of a small blue "
                                                                 "striped square and a large red plain star"]))
    assert int((tokens != 0).sum(1).max()) < tokens.shape[1]   # there is padding to cut
    with torch.no_grad():
        full, cut = model.encode_text(tokens, normalize=True), encode_text_unpadded(model, tokens)
    assert torch.allclose(full, cut, atol=1e-6)


def test_hard_negative_batches_hold_exactly_the_declared_negatives(tiny):
    params, paths = tiny
    from bindlab.model import make_tokenizer, model_spec
    v = params.variant("hn2")
    tok = make_tokenizer(model_spec(params)["tokenizer"])
    data = TrainData(params, paths, "hn2", v, tok)
    caps = pl.read_parquet(paths.captions("hn2")).sort("scene_id")
    idx = data.batch_indices(params.seed, 0, v.batch_size)
    batch = data.batch(idx)
    assert batch["neg_tokens"].shape == (v.batch_size * 2, params.model.config.text.context_length)
    for j, s in enumerate(idx.tolist()):
        negs = caps["hard_negatives"][s].to_list()
        rows = batch["neg_tokens"][2 * j:2 * j + 2]
        valid = batch["neg_valid"][2 * j:2 * j + 2]
        assert valid.sum() == min(len(negs), 2)
        if negs:
            assert np.array_equal(rows[valid], tok(negs[:2]))
        assert not rows[~valid].any()
    assert batch["neg_valid"].any()
    # and the hard-negative loss trains
    train_stage(params, paths, "hn2", progress=False, require_validation=False)
    assert (paths.model("hn2", 0) / "last.pt").exists()


def test_batches_cover_each_epoch_once(tiny):
    params, paths = tiny
    from bindlab.model import make_tokenizer, model_spec
    data = TrainData(params, paths, "ideal", params.variant("ideal"),
                     make_tokenizer(model_spec(params)["tokenizer"]))
    seen = np.concatenate([data.batch_indices(0, s, 30) for s in range(10)])  # 300 = one epoch
    assert sorted(seen.tolist()) == list(range(300))
    assert not np.array_equal(data.batch_indices(0, 0, 30), data.batch_indices(1, 0, 30))


def test_schedule_warms_up_then_decays():
    f = [lr_factor(s, 10, 100, 0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[-1] == pytest.approx(0.1, abs=1e-3)


def test_bad_input_fails_clearly_and_writes_nothing(tiny, tmp_path, capsys):
    params, paths = tiny
    empty = DataPaths(tmp_path / "empty")
    with pytest.raises(StageError, match="train.npy is missing"):
        train_stage(params, empty, "ideal", progress=False, require_validation=False)
    assert not (tmp_path / "empty").exists()
    # captions that have not passed `bindlab validate` are refused by default
    with pytest.raises(StageError, match="validation/ideal/passed.json is missing"):
        train_stage(params, paths, "ideal", progress=False)
    with pytest.raises(ParamsError, match="unknown variant 'nope'"):
        train_stage(params, paths, "nope", progress=False, require_validation=False)
    # a model whose image size differs from the rendered images
    raw = tiny_raw()
    raw["model"]["configs"]["tiny"]["vision"]["image_size"] = 32
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(StageError, match="images are 64 px but model.configs.tiny.vision.image_size is 32"):
        train_stage(load_params(write_params(bad, raw)), paths, "ideal", progress=False,
                    require_validation=False)
    # the CLI turns it into one line and exit status 2
    pf = write_params(tmp_path, tiny_raw())
    assert main(["train", "--params", str(pf), "--data", str(tmp_path / "empty"), "--variant", "ideal",
                 "--no-progress", "--unvalidated"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.npy is missing" in err[0]


def test_checkpoint_of_other_settings_is_refused(tiny, tmp_path):
    params, paths = tiny
    root = DataPaths(tmp_path / "d")
    for d in ("images", "captions"):
        (root.root / d).parent.mkdir(parents=True, exist_ok=True)
        (root.root / d).symlink_to(paths.root / d)
    train_stage(params, root, "ideal", progress=False, require_validation=False, _stop_after=3)
    longer = _params_with(tmp_path, base__steps=9)
    with pytest.raises(StageError, match="other settings .*steps: 6 -> 9"):
        train_stage(longer, root, "ideal", progress=False, require_validation=False)
    shutil.rmtree(root.model("ideal", 0))
