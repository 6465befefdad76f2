"""Issue #25 item 2: a run keeps the adapter of its lowest validation loss (chosen on the validation split only)."""
import json

import torch
from safetensors.torch import load_file

from kwanzaa.trainer import train
from test_trainer import CONVS, tiny_cfg

torch.set_num_threads(1)


def test_the_kept_adapter_is_the_lowest_validation_loss(tiny_model_dir, tmp_path):
    cfg = tiny_cfg(tiny_model_dir, "lora", **{"training.epochs": 3, "training.learning_rate": 5e-2})
    res = train(cfg, tmp_path / "run", CONVS, CONVS[:3])
    kept = res.manifest["metrics"]["kept"]
    losses = [(r["step"], r["eval_loss"]) for r in map(json.loads, res.log_path.read_text().splitlines()) if "eval_loss" in r]
    assert len(losses) == 3 and kept["rule"] == "lowest validation loss"
    best_step, best_loss = min(losses, key=lambda t: t[1])
    assert kept["step"] == best_step and abs(kept["eval_loss"] - best_loss) < 1e-9
    saved = load_file(str(res.adapter_dir / "adapter_model.safetensors"))
    aside = load_file(str(tmp_path / "run" / ".best-adapter" / "adapter.safetensors"))
    assert set(saved) == set(aside) and all(torch.equal(saved[k], aside[k]) for k in saved)


def test_keep_last_and_no_validation_keep_the_last_step(tiny_model_dir, tmp_path):
    last = train(tiny_cfg(tiny_model_dir, "lora", **{"training.keep": "last", "training.epochs": 1}), tmp_path / "a",
                 CONVS, CONVS[:2])
    assert last.manifest["metrics"]["kept"] == {"step": last.global_step, "rule": "last step", "why": "keep: last"}
    none = train(tiny_cfg(tiny_model_dir, "lora", **{"training.epochs": 1}), tmp_path / "b", CONVS)
    assert none.manifest["metrics"]["kept"]["why"] == "no validation loss"
