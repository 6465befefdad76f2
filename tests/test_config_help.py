"""Every run-configuration key carries its help in its field; the help rows and text, saved YAML and errors read it."""
import pytest
import yaml
from pydantic import BaseModel

from kwanzaa.config import (ARM_PATTERN, DataSection, RunConfig, arm_flags, config_help, config_help_text,
                            list_presets, load_config)
from kwanzaa.config_yaml import ConfigError


def all_fields(model=RunConfig, prefix=""):
    "(dotted key, FieldInfo) of every field of `model`, sections included, walked recursively by hand."
    for name, f in model.model_fields.items():
        yield prefix + name, f
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
            yield from all_fields(f.annotation, f"{prefix}{name}.")


def test_every_key_has_a_description():
    keys = dict(all_fields())
    assert len(keys) > 60   # the walk reaches the nested sections (eval.thresholds.*)
    missing = [k for k, f in keys.items() if not (f.description or "").strip()]
    assert not missing, f"keys without help (add Field(..., description=...)): {missing}"
    short = [k for k, f in keys.items() if len(f.description.split()) < 3]
    assert not short, f"help too short to say what the key does: {short}"


def test_help_rows_cover_every_leaf_key():
    leaves = [k for k, f in all_fields() if not (isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel))]
    rows = config_help()
    assert [r["key"] for r in rows] == leaves
    by_key = {r["key"]: r for r in rows}
    assert by_key["training.learning_rate"] | {"help": ""} == dict(key="training.learning_rate", type="float", allowed="> 0",
                                                                  default=2e-4, help="")
    assert by_key["training.warmup_ratio"]["allowed"] == "in [0, 1)"
    assert by_key["adapter.method"]["allowed"] == "qlora, lora" and by_key["adapter.method"]["type"] == "choice"
    assert by_key["model.revision"]["type"] == "str|None" and by_key["model.revision"]["default"] is None
    assert by_key["lora.target_modules"]["default"] == RunConfig().lora.target_modules
    # defaults are the defaults a RunConfig() has
    dump = RunConfig().model_dump(mode="json")
    for r in rows:
        v = dump
        for k in r["key"].split("."): v = v[k]
        assert r["default"] == v, r["key"]


def test_help_of_one_section_and_an_unknown_one():
    assert {r["key"] for r in config_help("speed")} == {f"speed.{k}" for k in RunConfig().speed.model_dump()}
    with pytest.raises(ConfigError, match=r"unknown section 'sped' \(did you mean 'speed'\?\)"): config_help("sped")


def test_help_text_shows_each_key_with_its_help():
    text = config_help_text()
    for r in config_help():
        assert f"\n  {r['key']} ({r['type']}" in "\n" + text, r["key"]
        assert r["help"].split()[0] in text
    assert "\nlora: The LoRA update: rank, scale, dropout and the layers it adapts.\n" in text
    lora = config_help_text("lora")
    assert lora.startswith("lora: ") and "training." not in lora
    assert "  lora.r (int; > 0; default 16)\n      rank of the update matrices" in lora


def test_yaml_with_help_explains_itself_and_loads_back(tmp_path):
    for name in list_presets():
        cfg = load_config(name)
        text = cfg.to_yaml(help=True)
        assert yaml.safe_load(text) == cfg.model_dump(mode="json")
        (tmp_path / f"{name}.yaml").write_text(text)
        assert load_config(path=tmp_path / f"{name}.yaml") == cfg
    lines = RunConfig().to_yaml(help=True).splitlines()
    i = lines.index("  learning_rate: 0.0002")
    assert lines[i - 1].startswith("  # peak learning rate")


def message(**kw) -> str:
    with pytest.raises(ConfigError) as e: load_config(**kw)
    return str(e.value)


def test_a_bad_value_names_the_key_what_is_allowed_and_its_help(tmp_path):
    help_r = RunConfig.model_fields["lora"].annotation.model_fields["r"].description
    assert message(overrides=["lora.r=0"]) == f"override 'lora.r=0': 'lora.r' must be > 0; got 0. lora.r: {help_r}"
    f = tmp_path / "run.yaml"
    f.write_text("data:\n  answer_mode: extractiv\n")
    assert message(path=f) == (f"{f}:2: 'data.answer_mode' must be one of extractive, free; got 'extractiv' (did you mean "
                               f"'extractive'?). data.answer_mode: {DataSection.model_fields['answer_mode'].description}")
    m = message(overrides=["training.learning_rate=fast"])
    assert "'training.learning_rate' must be a number; got 'fast'. training.learning_rate: peak learning rate" in m
    m = message(overrides=["eval.arms=[adapter+grammar]"])
    assert "unknown arm 'adapter+grammar'" in m and m.endswith("(see arm_flags)")


def test_an_unknown_key_keeps_its_did_you_mean_and_adds_the_suggestions_help():
    m = message(overrides=["training.learnig_rate=1e-4"])
    assert m.startswith("override 'training.learnig_rate=1e-4': unknown key 'training.learnig_rate' "
                        "(did you mean 'training.learning_rate'?); allowed keys in 'training': epochs, ")
    assert m.endswith(". training.learning_rate: " + RunConfig.model_fields["training"].annotation
                      .model_fields["learning_rate"].description)
    assert message(overrides=["trainig.seed=1"]).endswith(". training: Supervised fine-tuning: schedule, batch, checkpoints")
    assert message(overrides=["training.zzzz=1"]).endswith("gradient_checkpointing, torch_threads")  # no suggestion, no help


def test_answer_mode_defaults_to_extractive():
    assert RunConfig().data.answer_mode == "extractive"
    assert load_config("pilot", overrides=["data.answer_mode=free"]).data.answer_mode == "free"


@pytest.mark.parametrize("arm,flags", [
    ("base", dict(adapter=False, constrained=False, citecheck=False, calibrated=False, extractive=False, overlap=False, lead=False, rank=False)),
    ("adapter+constrained+citecheck", dict(adapter=True, constrained=True, citecheck=True, calibrated=False, extractive=False, overlap=False, lead=False, rank=False)),
    ("adapter+extractive+calibrated", dict(adapter=True, constrained=True, citecheck=False, calibrated=True, extractive=True, overlap=False, lead=False, rank=False)),
    ("base+extractive", dict(adapter=False, constrained=True, citecheck=False, calibrated=False, extractive=True, overlap=False, lead=False, rank=False)),
    ("adapter+constrained+extractive", dict(adapter=True, constrained=True, citecheck=False, calibrated=False, extractive=True, overlap=False, lead=False, rank=False)),
    ("adapter+extractive+calibrated+overlap", dict(adapter=True, constrained=True, citecheck=False, calibrated=True, extractive=True, overlap=True, lead=False, rank=False)),
    ("adapter+calibrated+overlap+lead", dict(adapter=True, constrained=True, citecheck=False, calibrated=True, extractive=True, overlap=True, lead=True, rank=False)),
    ("adapter+calibrated+rank", dict(adapter=True, constrained=True, citecheck=False, calibrated=True, extractive=True, overlap=False, lead=False, rank=True)),
])
def test_arm_flags(arm, flags):
    assert arm_flags(arm) == flags


@pytest.mark.parametrize("arm", ["adapter+extractive+extractive", "extractive", "adapter+extractiv", "base+free"])
def test_not_an_arm(arm):
    assert arm_flags(arm) is None
    with pytest.raises(ConfigError, match="unknown arm"): load_config(overrides={"eval.arms": [arm]})


def test_extractive_arms_in_a_config():
    assert "extractive" in ARM_PATTERN
    cfg = load_config("pilot", overrides={"eval.arms": ["base+extractive", "adapter+extractive+calibrated"]})
    assert cfg.eval.arms == ["base+extractive", "adapter+extractive+calibrated"]
