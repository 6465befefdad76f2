"""Reliability, security: no remote code, no pickle, no unsafe YAML unless explicitly enabled; hub push is opt-in.

Every trap here writes a marker file if it runs: the tests check both that loading refuses or ignores it by default
and (where there is a switch) that the trap really fires when enabled, so a passing test is not a dead trap.
Secrets in outputs: tests/test_no_secrets.py."""
import inspect, json, pickle, re, shutil
from pathlib import Path

import pytest
import torch

from kwanzaa.config import load_config
from kwanzaa.config_yaml import ConfigError
from kwanzaa.loader import LoaderError, load_base_model, load_model_and_tokenizer, load_tokenizer

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def _cfg(d, preset="lora", **over):
    return load_config(preset, overrides={"model.base": str(d), "model.device": "cpu", **over})


# --- trust_remote_code ----------------------------------------------------------------------------------------------
@pytest.fixture
def remote_code_model(tiny_model_dir, tmp_path):
    "The tiny model with an auto_map that points its config, model and tokenizer at code that writes a marker."
    d, marker = tmp_path / "remote", tmp_path / "REMOTE_CODE_RAN"
    shutil.copytree(tiny_model_dir, d)
    (d / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                               "from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast\n"
                               "class EvilConfig(LlamaConfig): pass\n"
                               "class EvilModel(LlamaForCausalLM):\n    config_class = EvilConfig\n"
                               "class EvilTokenizer(PreTrainedTokenizerFast): pass\n")
    for name, amap in (("config.json", {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}),
                       ("tokenizer_config.json", {"AutoTokenizer": [None, "evil.EvilTokenizer"]})):
        c = json.loads((d / name).read_text())
        (d / name).write_text(json.dumps(c | {"auto_map": amap}))
    return d, marker


def test_remote_code_is_not_run_by_default(remote_code_model):
    d, marker = remote_code_model
    model, tok = load_model_and_tokenizer(_cfg(d))
    assert type(model).__name__ == "LlamaForCausalLM" and not marker.exists()
    load_tokenizer(d)
    from kwanzaa.inference import load_for_inference
    load_for_inference(str(d))
    assert not marker.exists()
    for preset in ("qlora", "lora", "pilot", "cpu"): assert load_config(preset).model.trust_remote_code is False


def test_remote_code_runs_only_when_enabled(remote_code_model):
    "The trap is live: model.trust_remote_code=true does run the shipped code (so the test above proves something)."
    d, marker = remote_code_model
    model = load_base_model(_cfg(d, **{"model.trust_remote_code": True}))
    assert type(model).__name__ == "EvilModel" and marker.read_text() == "ran"


# --- pickle weights -------------------------------------------------------------------------------------------------
class _Payload:
    "Unpickling this runs code: it writes the marker."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (exec, (f"open({self.marker!r}, 'w').write('pickle ran')",))


def _pickled(src, dest, marker, name="pytorch_model.bin"):
    shutil.copytree(src, dest)
    from safetensors.torch import load_file
    sd = load_file(dest / "model.safetensors")
    (dest / "model.safetensors").unlink()
    torch.save({**sd, "payload": _Payload(marker)}, dest / name)
    return dest


def test_the_pickle_trap_is_live(tmp_path):
    marker = tmp_path / "PICKLE_RAN"
    torch.save(_Payload(marker), tmp_path / "x.bin")
    torch.load(tmp_path / "x.bin", weights_only=False)
    assert marker.read_text() == "pickle ran"


def test_pickle_model_is_refused_unless_allowed_and_never_unpickled_unsafely(tiny_model_dir, tmp_path):
    marker = tmp_path / "PICKLE_RAN"
    d = _pickled(tiny_model_dir, tmp_path / "pickled", marker)
    with pytest.raises(LoaderError) as e: load_base_model(_cfg(d))
    assert str(e.value).startswith(f"{d} holds only pickle (.bin) weights, which can run code when loaded")
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):  # allowed: torch's weights_only refuses it
        load_base_model(_cfg(d, **{"model.allow_pickle": True}))
    assert not marker.exists()


def test_safetensors_win_over_a_pickle_next_to_them(tiny_model_dir, tmp_path):
    marker = tmp_path / "PICKLE_RAN"
    d = tmp_path / "both"
    shutil.copytree(tiny_model_dir, d)
    torch.save({"payload": _Payload(marker)}, d / "pytorch_model.bin")
    model = load_base_model(_cfg(d))
    assert model.model.layers[0].self_attn.q_proj.weight.shape[0] > 0 and not marker.exists()


def test_pickle_adapter_is_not_unpickled_unsafely(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from kwanzaa.inference import InferenceError, load_for_inference
    marker, adir = tmp_path / "PICKLE_RAN", tmp_path / "adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=2, target_modules=["q_proj"])
                   ).save_pretrained(adir)
    (adir / "adapter_model.safetensors").unlink()
    torch.save({"payload": _Payload(marker)}, adir / "adapter_model.bin")
    with pytest.raises(InferenceError) as e: load_for_inference(str(tiny_model_dir), adapter_dir=adir)
    assert str(e.value).startswith(f"{adir} has no adapter weights") and "pickle weights are not loaded" in str(e.value)
    assert not marker.exists()


# --- YAML -----------------------------------------------------------------------------------------------------------
def test_python_tags_in_yaml_are_rejected_and_never_run(tmp_path):
    marker = tmp_path / "YAML_RAN"
    tag = f'!!python/object/apply:os.system ["touch {marker}"]'
    ctor = "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"
    f = tmp_path / "run.yaml"
    f.write_text(f"inherits: cpu\ntraining:\n  seed: {tag}\n")
    with pytest.raises(ConfigError) as e: load_config(path=f)
    assert str(e.value) == f"{f}:3:9: invalid YAML: {ctor}"
    f.write_text(f"inherits: !!python/name:os.system\n")
    with pytest.raises(ConfigError) as e: load_config(path=f)
    assert str(e.value) == (f"{f}:1:11: invalid YAML: could not determine a constructor for the tag "
                            "'tag:yaml.org,2002:python/name:os.system'")
    with pytest.raises(ConfigError) as e: load_config("cpu", overrides=[f"training.seed={tag}"])
    assert str(e.value).startswith("override 'training.seed=!!python/object/apply:os.system")   # long values are cut
    assert str(e.value).endswith(f"value '{tag}' is not valid YAML: {ctor}")
    from kwanzaa.pipeline import RunError
    from kwanzaa.sweeps import sweep
    s = tmp_path / "sweep.yaml"
    s.write_text(f"preset: cpu\ngrid:\n  lora.r: {tag}\n")
    with pytest.raises(RunError) as e: sweep(s, tmp_path / "sweep-out")
    assert str(e.value) == f"cannot read sweep file {s}:3:11: invalid YAML: {ctor}"   # the bounded loader: line, column
    assert not marker.exists()


def test_python_tag_in_a_papermill_parameter_is_a_run_error(tmp_path):
    "A python tag in a papermill parameter is refused by the safe loader and reported as a RunError, never run."
    from kwanzaa.pipeline import RunError, split_params
    marker = tmp_path / "YAML_RAN"
    with pytest.raises(RunError) as e: split_params([f'limit=!!python/object/apply:os.system ["touch {marker}"]'])
    assert str(e.value).startswith("parameter 'limit': value ") and "not valid YAML" in str(e.value)
    assert not marker.exists()


def _sources():
    "The package source and the notebooks it is exported from (the pipeline notebooks included)."
    files = sorted((REPO / "kwanzaa").glob("*.py")) + sorted((REPO / "nbs").rglob("*.ipynb"))
    return [f for f in files if f.name != "_modidx.py" and ".ipynb_checkpoints" not in f.parts]


UNSAFE = {r"yaml\.load\(": "yaml.load (use yaml.safe_load)", r"yaml\.(unsafe_load|full_load)": "an unsafe YAML loader",
          r"Loader\s*=\s*yaml\.(Loader|FullLoader|UnsafeLoader)": "an unsafe YAML loader",
          r"trust_remote_code\s*=\s*True": "trust_remote_code=True hard-coded",
          r"weights_only\s*=\s*False": "torch.load with weights_only=False", r"\bpickle\.loads?\(": "pickle.load",
          r"push_to_hub\s*=\s*True": "push_to_hub=True hard-coded"}


def test_source_uses_no_unsafe_loader():
    found = [f"{f.relative_to(REPO)}: {why}" for f in _sources() for pat, why in UNSAFE.items()
             if re.search(pat, f.read_text(encoding="utf-8"))]
    assert found == []


# --- hub push -------------------------------------------------------------------------------------------------------
def test_hub_push_is_opt_in(tiny_model_dir, tmp_path):
    from kwanzaa.trainer import sft_config, train
    from kwanzaa.publish import push_adapter
    args = sft_config(_cfg(tiny_model_dir, "qlora"), tmp_path, device="cpu")
    assert (args.push_to_hub, args.hub_token, args.hub_model_id, list(args.report_to)) == (False, None, None, [])
    assert not any("push" in p or "hub" in p or "token" in p for p in inspect.signature(train).parameters)
    # push_adapter is the only way up: the package never calls it, and the train notebook only behind `if push_to_hub:`
    calls = [f"{f.relative_to(REPO)}" for f in _sources()
             if f.name not in ("05b_publish.ipynb", "train.ipynb") and re.search(r"(?<!def )push_adapter\(", f.read_text(encoding="utf-8"))]
    assert calls == []
    nb = (REPO / "nbs/pipelines/train.ipynb").read_text(encoding="utf-8")
    assert re.search(r"if push_to_hub:.{0,300}push_adapter\(", nb, re.S) and '"push_to_hub: bool = False' in nb
    assert "token" not in inspect.signature(push_adapter).parameters   # read from the environment, never passed around
