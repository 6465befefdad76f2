"""The trainer with the GPU speed levers switched on (the `speed` section, as in the qlora-fast preset), on the tiny
model on CPU: same code path, same loss as the plain path on the first step, adapter written."""
import json, os

import torch

from kwanzaa.trainer import train
from test_trainer import CONVS, tiny_cfg

torch.set_num_threads(1)
os.environ["KWANZAA_PROGRESS"] = "lines"


LEVERS = {"speed.lean": True, "speed.no_sync": True, "speed.lm_head_chunk": 8192, "speed.packing": "rows",
          "speed.micro_batch": 2, "speed.fused_lora": True}   # the qlora-fast levers (offload needs a GPU), micro-batch 2


def _first_loss(out):
    return [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in l][0]["loss"]


def test_speed_levers_train_and_match_the_plain_first_loss(tiny_model_dir, tmp_path):
    common = {"training.max_steps": 2, "training.per_device_train_batch_size": 1, "training.gradient_accumulation_steps": 4,
              "lora.dropout": 0.0, "training.learning_rate": 1e-3}
    plain = train(tiny_cfg(tiny_model_dir, "lora", **common), tmp_path / "plain", CONVS)
    fast = train(tiny_cfg(tiny_model_dir, "lora", **common, **LEVERS), tmp_path / "fast", CONVS)
    assert (fast.adapter_dir / "adapter_model.safetensors").exists()
    assert fast.global_step == plain.global_step == 2
    lp, lf = _first_loss(tmp_path / "plain"), _first_loss(tmp_path / "fast")
    assert abs(lp - lf) / lp < 2e-2, (lp, lf)   # same examples, same effective batch of 4; bf16-lean rounding only
    speed = json.loads((tmp_path / "fast/manifest.json").read_text())["config"]["speed"]
    assert {f"speed.{k}": v for k, v in speed.items() if f"speed.{k}" in LEVERS} == LEVERS


def test_gpu_levers_on_a_cpu_stay_off_say_so_and_the_manifest_records_what_ran(tiny_model_dir, tmp_path, capfd):
    "qlora-fast's GPU-only levers (Liger, the side-stream offload, the table on the host) on a CPU: one line each, the run trains, and the"
    " manifest keeps the request apart from what was in force (issue #26: never a silent fallback reported as the lever)."
    from kwanzaa import speed
    speed._SAID.clear()   # said once a process: an earlier test of this process may have said it already
    common = {"training.max_steps": 1, "training.per_device_train_batch_size": 1, "training.gradient_accumulation_steps": 2}
    gpu = {"speed.liger": True, "speed.offload": "stream", "speed.no_sync": True, "speed.lean": True, "speed.embed_cpu": True}
    res = train(tiny_cfg(tiny_model_dir, "lora", **common, **gpu), tmp_path / "gpu", CONVS)
    assert res.global_step == 1 and (res.adapter_dir / "adapter_model.safetensors").exists()
    err = capfd.readouterr().err
    assert "speed.liger=True stays off here: needs liger-kernel (pip install 'kwanzaa[gpu]') and a CUDA device" in err
    assert "speed.offload='stream' stays off here: the side-stream copies need a CUDA device" in err
    assert "speed.embed_cpu=True stays off here: it saves GPU memory: needs a CUDA device" in err
    man = json.loads((tmp_path / "gpu/manifest.json").read_text())
    assert (man["speed"]["liger"], man["speed"]["offload"]) == (True, "stream")          # asked for
    assert man["speed_in_force"] == {**man["speed"], "liger": False, "offload": False, "embed_cpu": False}  # no_sync, lean
