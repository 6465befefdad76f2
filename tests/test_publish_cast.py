"A cast copy of an adapter (publish.cast_adapter) still loads: its record names the cast weights and the ones it came from."
import json

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from kwanzaa.inference import load_for_inference
from kwanzaa.publish import cast_adapter
from kwanzaa.records import ADAPTER_RECORD, adapter_weights_problem, file_sha256


def test_a_bf16_copy_loads_and_records_what_it_was_cast_from(tmp_path, tiny_model_dir):
    src = tmp_path / "adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=2, target_modules=["q_proj"])
                   ).save_pretrained(src)
    fp32 = file_sha256(src / "adapter_model.safetensors")
    (src / ADAPTER_RECORD).write_text(json.dumps({"base": str(tiny_model_dir), "weights_sha256": fp32}))
    out = cast_adapter(src, tmp_path / "bf16")
    rec = json.loads((out / ADAPTER_RECORD).read_text())
    assert rec["cast"] == {"dtype": "bfloat16", "from_weights_sha256": fp32}
    assert rec["weights_sha256"] == file_sha256(out / "adapter_model.safetensors") != fp32
    assert adapter_weights_problem(out) is None
    assert {v.dtype for v in load_file(str(out / "adapter_model.safetensors")).values()} == {torch.bfloat16}
    model, _ = load_for_inference(str(tiny_model_dir), out)   # the load check passes on the cast copy
    assert hasattr(model, "peft_config")
