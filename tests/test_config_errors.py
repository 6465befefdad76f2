"""Bad run configurations give one ConfigError naming the file:line or override, the key and what is allowed."""
import pytest
import torch
from kwanzaa.config import RunConfig, apply_overrides, check_device, load_config, resolve_compute_dtype
from kwanzaa.config_yaml import ConfigError

TRAINING_KEYS = ("epochs, learning_rate, per_device_train_batch_size, gradient_accumulation_steps, optim, "
                 "lr_scheduler_type, warmup_ratio, max_seq_length, seed, save_steps, save_total_limit, logging_steps, "
                 "max_steps, keep, gradient_checkpointing, torch_threads")
TOP_KEYS = "name, model, adapter, lora, quantization, training, speed, data, eval"


def helps(key:str) -> str:
    "'. key: help' that ends every message about `key`: its field's description (kwanzaa.config_help)."
    model, f = RunConfig, None
    for k in key.split("."): f = model.model_fields[k]; model = f.annotation
    return f". {key}: {f.description.rstrip('.')}"


def message(**kw) -> str:
    "The ConfigError message load_config raises for `kw` (fails the test if it does not raise)."
    with pytest.raises(ConfigError) as e: load_config(**kw)
    return str(e.value)


def yaml_file(tmp_path, text, name="run.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# (YAML text, expected message with {f} for the file path); every case is a file a user could write
FILE_CASES = {
    "invalid YAML": ("training:\n  epochs: 2\n learning_rate: 1\n",
                     "{f}:3:2: invalid YAML: expected <block end>, but found '<block mapping start>'"),
    "tab indentation": ("training:\n\tepochs: 2\n",
                        "{f}:2:1: invalid YAML: found character '\\t' that cannot start any token"),
    "not a mapping": ("- qlora\n- cpu\n",
                      "{f}: expected a mapping of sections (" + TOP_KEYS + "), got list"),
    "duplicate key": ("lora:\n  r: 8\n  r: 4\n", "{f}:3: duplicate key 'lora.r'"),
    "unknown key": ("inherits: cpu\ntraining:\n  learnig_rate: 1.0e-4\n",
                    "{f}:3: unknown key 'training.learnig_rate' (did you mean 'training.learning_rate'?); "
                    "allowed keys in 'training': " + TRAINING_KEYS + helps("training.learning_rate")),
    "unknown section": ("trainig:\n  epochs: 1\n",
                        "{f}:1: unknown section 'trainig' (did you mean 'training'?); allowed top-level keys: "
                        + TOP_KEYS + ", inherits" + helps("training")),
    "section not a mapping": ("training: 5\n", "{f}:1: 'training' must be a mapping of keys; got 5" + helps("training")),
    "wrong type": ("training:\n  epochs: two\n", "{f}:2: 'training.epochs' must be a number; got 'two'" + helps("training.epochs")),
    "wrong type int": ("lora:\n  r: 8.5\n", "{f}:2: 'lora.r' must be an integer; got 8.5" + helps("lora.r")),
    "wrong type bool": ("quantization:\n  bnb_4bit_use_double_quant: maybe\n",
                        "{f}:2: 'quantization.bnb_4bit_use_double_quant' must be true or false; got 'maybe'" + helps("quantization.bnb_4bit_use_double_quant")),
    "r <= 0": ("lora:\n  r: 0\n", "{f}:2: 'lora.r' must be > 0; got 0" + helps("lora.r")),
    "lr <= 0": ("training:\n  learning_rate: -1.0e-4\n", "{f}:2: 'training.learning_rate' must be > 0; got -0.0001" + helps("training.learning_rate")),
    "dropout = 1": ("lora:\n  dropout: 1.0\n", "{f}:2: 'lora.dropout' must be in [0, 1); got 1.0" + helps("lora.dropout")),
    "dropout < 0": ("lora:\n  dropout: -0.1\n", "{f}:2: 'lora.dropout' must be in [0, 1); got -0.1" + helps("lora.dropout")),
    "epochs <= 0": ("training:\n  epochs: 0\n", "{f}:2: 'training.epochs' must be > 0; got 0" + helps("training.epochs")),
    "grad accum < 1": ("training:\n  gradient_accumulation_steps: 0\n",
                       "{f}:2: 'training.gradient_accumulation_steps' must be >= 1; got 0" + helps("training.gradient_accumulation_steps")),
    "threshold > 1": ("eval:\n  thresholds:\n    citation_coverage: 90\n",
                      "{f}:3: 'eval.thresholds.citation_coverage' must be in [0, 1]; got 90" + helps("eval.thresholds.citation_coverage")),
    "misspelled method": ("adapter:\n  method: qlroa\n",
                          "{f}:2: 'adapter.method' must be one of qlora, lora; got 'qlroa' (did you mean 'qlora'?)" + helps("adapter.method")),
    "unknown optimizer": ("inherits: lora\ntraining: {optim: adamw}\n",
                          "{f}:2: 'training.optim' must be one of paged_adamw_8bit, paged_adamw_32bit, adamw_8bit, "
                          "adamw_bnb_8bit, adamw_torch, adamw_torch_fused, adafactor, sgd; got 'adamw' "
                          "(did you mean 'adamw_8bit'?)" + helps("training.optim")),
    "empty target_modules": ("lora:\n  target_modules: []\n", "{f}:2: 'lora.target_modules' must not be empty" + helps("lora.target_modules")),
    "list item type": ("eval:\n  arms: [base, 7]\n", "{f}:2: 'eval.arms[1]' must be a string; got 7" + helps("eval.arms")),
    "unknown inherited preset": ("inherits: cpuu\n",
                                 "{f}:1: unknown preset 'cpuu' (did you mean 'cpu'?); presets: cpu, lora, pilot, qlora, qlora-fast, small-gpu"),
    "inherits not a name": ("inherits: [cpu]\n", "{f}:1: 'inherits' must be a preset name (cpu, lora, pilot, qlora, qlora-fast, small-gpu)"),
    "removed load_in_4bit": ("quantization:\n  load_in_4bit: false\n",
                             "{f}:2: 'quantization.load_in_4bit' was removed: adapter.method is the one key for 4-bit "
                             "loading; set adapter.method=qlora (4-bit base) or adapter.method=lora (unquantized) instead"),
    "moved training.packing": ("training:\n  packing: true\n",
                               "{f}:2: 'training.packing' moved to speed.packing: set speed.packing=none, rows or flat "
                               "(flat = TRL's padding-free packing, what training.packing=true did)"),
    "removed speed.enabled": ("speed:\n  enabled: true\n",
                              "{f}:2: 'speed.enabled' was removed: the speed levers are set one by one (speed.lean, "
                              "speed.packing, ...; see the qlora-fast preset), and all off is the plain recipe"),
    "train is the golden set": ("data:\n  train: package:golden\n",
                                "{f}:2: 'data.train' is 'package:golden', the golden set, which is held out for "
                                "evaluation; keep eval data out of training: use package:train or your own file" + helps("data.train")),
    "validation is the golden set": ("data:\n  validation: golden\n",
                                     "{f}:2: 'data.validation' is 'golden', the golden set, which is held out for "
                                     "evaluation; keep eval data out of training: use package:validation or your own file" + helps("data.validation")),
    "too deep": ("a: " + "[" * 20000 + "]" * 20000 + "\n", "{f}:1:67: invalid YAML: nested deeper than 64 levels"),
    "recursive alias": ("lora: &a\n  r: *a\n", "{f}:2:6: invalid YAML: alias *a refers to a node that contains it"),
}


# a 342-byte "billion laughs": nine aliases of nine aliases ... expands to 9^9 nodes
LAUGHS = 'lol1: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"lol{i + 2}: &{c} [{','.join(['*' + p] * 9)}]\n" for i, (p, c) in enumerate(zip("abcdefgh", "bcdefghi")))


@pytest.mark.parametrize("case", FILE_CASES)
def test_bad_file(tmp_path, case):
    text, expected = FILE_CASES[case]
    f = yaml_file(tmp_path, text)
    assert message(path=f) == expected.format(f=f)


def test_yaml_bombs_are_refused_fast(tmp_path):
    import time
    t = time.perf_counter()
    f = yaml_file(tmp_path, LAUGHS)
    assert message(path=f) == (f"{f}:5:11: invalid YAML: aliases expand to more than 10000 nodes (a YAML bomb?); "
                               "write the values out")
    assert message(preset="qlora", overrides=["lora.target_modules=" + "[" * 20000 + "]" * 20000]).endswith(
        "is not valid YAML: nested deeper than 64 levels")
    assert time.perf_counter() - t < 1.0


def test_small_aliases_still_work(tmp_path):
    f = yaml_file(tmp_path, "x-mods: &m [q_proj, v_proj]\nlora:\n  target_modules: *m\n")
    with pytest.raises(ConfigError) as e: load_config(path=f)   # x-mods is not a section, but the alias composed fine
    assert str(e.value).startswith(f"{f}:1: unknown section 'x-mods'")
    f = yaml_file(tmp_path, "lora: &l {r: 8}\n", "ok.yaml")
    assert load_config(path=f).lora.r == 8


def test_preset_may_be_a_yaml_path(tmp_path):
    f = yaml_file(tmp_path, "inherits: cpu\nlora:\n  r: 8\n", "mine.yaml")
    assert load_config(preset=str(f)) == load_config(path=f)
    assert load_config(preset=f).lora.r == 8
    bare = yaml_file(tmp_path, "lora:\n  r: 4\n", "bare.yml")   # no inherits: over the built-in defaults
    assert load_config(preset=str(bare)) == RunConfig(lora={"r": 4})
    over = yaml_file(tmp_path, "training:\n  epochs: 1\n", "over.yaml")   # path= layers over a preset file
    cfg = load_config(preset=str(f), path=over)
    assert (cfg.lora.r, cfg.training.epochs, cfg.model.device) == (8, 1, "cpu")
    assert message(preset=str(tmp_path / "nope.yaml")) == f"{tmp_path / 'nope.yaml'}: config file not found"


def test_empty_and_miscased_presets():
    assert message(preset="") == ("preset '' is not a preset name or a YAML path; presets: cpu, lora, pilot, qlora, "
                                  "qlora-fast, small-gpu (None: the built-in defaults)")
    assert message(preset="PILOT") == ("unknown preset 'PILOT' (did you mean 'pilot'?); presets: cpu, lora, pilot, "
                                       "qlora, qlora-fast, small-gpu")


def test_golden_file_path_is_held_out():
    from kwanzaa.examples import dataset_path
    gold = str(dataset_path("golden"))
    assert message(overrides=[f"data.train={gold}"]).startswith(
        f"override 'data.train={gold}': 'data.train' is '{gold}', the golden set, which is held out for evaluation")
    assert message(overrides={"data.golden": "mine.jsonl", "data.train": "mine.jsonl"}).startswith(
        "override 'data.train': 'data.train' is 'mine.jsonl', the set evaluated on (data.golden), which is held out")


def test_override_splits_at_the_first_equals():
    cfg = load_config(overrides=["model.base=dir/a=b", "data.train=x==y.jsonl"])
    assert (cfg.model.base, cfg.data.train) == ("dir/a=b", "x==y.jsonl")


def test_one_key_per_fact():
    from kwanzaa.config import SpeedSection, is_qlora
    assert [is_qlora(load_config(p)) for p in ("qlora", "lora", "cpu", "qlora-fast")] == [True, False, False, True]
    assert "load_in_4bit" not in load_config("qlora").to_yaml() and "enabled" not in load_config("qlora").to_yaml()
    plain = SpeedSection.plain()
    assert (plain.lean, plain.no_sync, plain.lm_head_chunk, plain.liger, plain.checkpoint_every, plain.offload,
            plain.packing, plain.micro_batch, plain.fused_lora) == (False, False, None, False, 1, False, "none", None, False)
    for p in ("qlora", "lora", "small-gpu"): assert load_config(p).speed.is_plain, p
    for p in ("cpu", "pilot"):   # the CPU levers (outputs/bench/cpu_recipe.json); pilot inherits cpu
        assert load_config(p).speed == plain.with_(no_sync=True, lm_head_chunk=8192, fused_lora=True), p
    fast = load_config("qlora-fast").speed
    assert fast == plain.with_(lean=True, no_sync=True, lm_head_chunk=8192, liger=True, packing="rows", offload="stream",
                               micro_batch=4, fused_lora=True)
    assert not fast.is_plain and plain.with_(packing="flat").packing == "flat"
    with pytest.raises(ValueError): plain.with_(packing="packed")
    with pytest.raises(ValueError): plain.with_(enabled=True)


def test_two_problems_are_both_reported(tmp_path):
    f = yaml_file(tmp_path, "lora:\n  r: 0\n  dropout: 2\n")
    assert message(path=f) == ("2 problems in the run configuration:\n"
                               f"- {f}:2: 'lora.r' must be > 0; got 0{helps('lora.r')}\n"
                               f"- {f}:3: 'lora.dropout' must be in [0, 1); got 2{helps('lora.dropout')}")


def test_missing_file(tmp_path):
    assert message(path=tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: config file not found"


def test_unknown_preset():
    assert message(preset="qlroa") == "unknown preset 'qlroa' (did you mean 'qlora'?); presets: cpu, lora, pilot, qlora, qlora-fast, small-gpu"
    assert message(preset="large") == "unknown preset 'large'; presets: cpu, lora, pilot, qlora, qlora-fast, small-gpu"


OVERRIDE_CASES = {
    "no '='": (["training.learning_rate"],
               "override 'training.learning_rate': expected KEY=VALUE, e.g. training.learning_rate=1e-4"),
    "empty key": (["=3"], "override '=3': expected KEY=VALUE, e.g. training.learning_rate=1e-4"),
    "non-existent section": (["trainig.learning_rate=1e-4"],
                             "override 'trainig.learning_rate=1e-4': unknown section 'trainig' (did you mean "
                             "'training'?); allowed top-level keys: " + TOP_KEYS + helps("training")),
    "unknown key in a section": (["lora.alhpa=8"],
                                 "override 'lora.alhpa=8': unknown key 'lora.alhpa' (did you mean 'lora.alpha'?); "
                                 "allowed keys in 'lora': r, alpha, dropout, target_modules, bias" + helps("lora.alpha")),
    "value as a section": (["lora.r.x=1"],
                           "override 'lora.r.x=1': 'lora.r' is a value, not a section; set it with lora.r=VALUE"),
    "value not YAML": (["lora.target_modules=[q_proj,"],
                       "override 'lora.target_modules=[q_proj,': value '[q_proj,' is not valid YAML: "
                       "expected the node content, but found '<stream end>'"),
    "out of range": (["training.gradient_accumulation_steps=0"],
                     "override 'training.gradient_accumulation_steps=0': "
                     "'training.gradient_accumulation_steps' must be >= 1; got 0" + helps("training.gradient_accumulation_steps")),
    "misspelled method": (["adapter.method=qlroa"],
                          "override 'adapter.method=qlroa': 'adapter.method' must be one of qlora, lora; "
                          "got 'qlroa' (did you mean 'qlora'?)" + helps("adapter.method")),
    "dict: unknown section": ({"trainng.seed": 1},
                              "override 'trainng.seed': unknown section 'trainng' (did you mean 'training'?); "
                              "allowed top-level keys: " + TOP_KEYS + helps("training")),
    "dict: nested unknown key": ({"eval.thresholds": {"citation_covrage": 0.9}},
                                 "override 'eval.thresholds': unknown key 'eval.thresholds.citation_covrage' (did "
                                 "you mean 'eval.thresholds.citation_coverage'?); allowed keys in 'eval.thresholds': "
                                 "json_parse_rate, citation_coverage, refusal_precision" + helps("eval.thresholds.citation_coverage")),
    "dict: wrong type": ({"training.learning_rate": "fast"},
                         "override 'training.learning_rate': 'training.learning_rate' must be a number; got 'fast'" + helps("training.learning_rate")),
    "4-bit storage dtype": (["quantization.bnb_4bit_quant_storage=int8"],
                            "override 'quantization.bnb_4bit_quant_storage=int8': 'quantization.bnb_4bit_quant_storage' "
                            "must be one of auto, uint8, bfloat16, float16, float32; got 'int8' (did you mean 'uint8'?)" + helps("quantization.bnb_4bit_quant_storage")),
    "removed load_in_4bit": (["quantization.load_in_4bit=true"],
                             "override 'quantization.load_in_4bit=true': 'quantization.load_in_4bit' was removed: "
                             "adapter.method is the one key for 4-bit loading; set adapter.method=qlora (4-bit base) "
                             "or adapter.method=lora (unquantized) instead"),
    "dict: moved training.packing": ({"training": {"packing": True}},
                                     "override 'training': 'training.packing' moved to speed.packing: set "
                                     "speed.packing=none, rows or flat (flat = TRL's padding-free packing, what "
                                     "training.packing=true did)"),
    "removed speed.enabled": (["speed.enabled=true"],
                              "override 'speed.enabled=true': 'speed.enabled' was removed: the speed levers are set "
                              "one by one (speed.lean, speed.packing, ...; see the qlora-fast preset), and all off is "
                              "the plain recipe"),
}


@pytest.mark.parametrize("case", OVERRIDE_CASES)
def test_bad_override(case):
    overrides, expected = OVERRIDE_CASES[case]
    assert message(preset="qlora", overrides=overrides) == expected
    with pytest.raises(ConfigError) as e: apply_overrides(RunConfig(), overrides)
    assert str(e.value) == expected


def test_override_blames_the_override_not_the_preset(tmp_path):
    f = yaml_file(tmp_path, "inherits: cpu\nlora:\n  r: 8\n")
    assert message(path=f, overrides=["lora.r=-8"]) == "override 'lora.r=-8': 'lora.r' must be > 0; got -8" + helps("lora.r")


DEVICE_CASES = {
    "cuda without CUDA": (["model.device=cuda"], "cpu", None,
                          "'model.device' is 'cuda' but this machine has no CUDA device; "
                          "set model.device=auto or model.device=cpu"),
    "a GPU preset on a CPU-only machine": ([], "cpu", None,
                                           "qlora trains 'Qwen/Qwen2.5-1.5B-Instruct' (a model from the Hub, sized for a "
                                           "GPU) but this machine has no CUDA device: use --preset pilot (a few minutes) "
                                           "or --preset cpu (the full training set) with the embedded SmolLM2; in Colab "
                                           "pick a GPU runtime (Runtime > Change runtime type > T4 GPU); or set "
                                           "model.device=cpu to train it on the CPU anyway"),
    "fp16 weights on CPU": (["model.device=cpu", "model.dtype=float16"], "cpu", None,
                            "'model.dtype' is 'float16', which needs a GPU; on a CPU use auto (bf16 where the CPU has "
                            "native bf16, else float32) or float32"),
    "fp16 4-bit compute on CPU": (["model.device=cpu", "quantization.bnb_4bit_compute_dtype=float16"], "cpu", None,
                                  "'quantization.bnb_4bit_compute_dtype' is 'float16', which needs a GPU; "
                                  "on a CPU use auto (bf16 where the CPU has native bf16, else float32) or float32"),
    "bf16 on a T4": (["quantization.bnb_4bit_compute_dtype=bfloat16"], "cuda", (7, 5),
                     "'quantization.bnb_4bit_compute_dtype' is 'bfloat16' but this GPU (compute capability 7.5) "
                     "has no bf16 support; use auto or float16"),
    "flash attention on CPU": (["model.device=cpu", "model.attn_implementation=flash_attention_2"], "cpu", None,
                               "'model.attn_implementation' is 'flash_attention_2', which needs a GPU; "
                               "use sdpa on a CPU"),
}


@pytest.mark.parametrize("case", DEVICE_CASES)
def test_device_mismatch(case):
    overrides, device, capability, expected = DEVICE_CASES[case]
    cfg = load_config("qlora", overrides=overrides)
    with pytest.raises(ConfigError) as e: check_device(cfg, device=device, capability=capability)
    assert str(e.value) == expected


def test_device_settings_that_are_fine():
    "QLoRA with the paged 8-bit optimizer runs on a CPU (bitsandbytes falls back), so it is not an error when asked for."
    assert check_device(load_config("qlora", overrides=["model.device=cpu"]), device="cpu") == "cpu"
    assert check_device(load_config("qlora"), device="cuda", capability=(7, 5)) == "cuda"
    assert check_device(load_config("cpu"), device="cuda", capability=(8, 9)) == "cpu"


@pytest.mark.parametrize("isa,want", [({"avx", "avx2", "fma"}, "float32"), ({"avx2", "avx512_bf16"}, "bfloat16"),
                                      ({"avx2", "amx_bf16", "amx_tile"}, "bfloat16"), (set(), "float32")])
def test_auto_dtype_on_a_cpu_follows_its_bf16_instructions(isa, want, monkeypatch):
    "Both branches, whatever CPU runs the test: bf16 only where the CPU computes it natively."
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert resolve_compute_dtype("auto", "cpu", isa=isa) == getattr(torch, want)


def test_onednn_cap_below_bf16_means_float32(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert resolve_compute_dtype("auto", "cpu", isa={"amx_bf16"}) == torch.float32


def test_bf16_by_name_on_a_cpu_without_it_warns():
    cfg = load_config("pilot", overrides=["model.dtype=bfloat16"])
    with pytest.warns(UserWarning, match="no native bf16"): check_device(cfg, device="cpu", isa={"avx2"})


def test_unknown_compute_dtype():
    with pytest.raises(ConfigError) as e: resolve_compute_dtype("bf16", "cpu")
    assert str(e.value) == "compute dtype 'bf16' is not one of auto, bfloat16, float16, float32 (did you mean 'bfloat16'?)"
