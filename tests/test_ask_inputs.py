"""ask()/Asker and the calibration file under hostile input: a clear InferenceError or CalibrationError naming what is
wrong, never a traceback from deep inside the tokenizer or json (issue #27's weak items in inference and calibrate)."""
import json, shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADAPTER = ROOT / "outputs/golden/adapter"


@pytest.fixture()
def adapter_copy(tmp_path):
    d = tmp_path / "adapter"
    shutil.copytree(ADAPTER, d)
    return d


@pytest.mark.parametrize("value", [5.0, -1, float("nan"), None, "0.5", True])
def test_a_calibration_threshold_that_is_not_a_probability_is_refused(adapter_copy, value):
    from kwanzaa.inference import CalibrationError, load_calibration
    p = adapter_copy / "calibration.json"
    d = json.loads(p.read_text()); d["threshold"] = value
    p.write_text(json.dumps(d))   # NaN is written as the token NaN, which Python's json reads back
    with pytest.raises(CalibrationError) as e: load_calibration(adapter_copy)
    assert str(p) in str(e.value) and "field 'threshold' must be a probability in [0, 1]" in str(e.value)


@pytest.mark.parametrize("text,says", [("{not json", "is not readable JSON"), ("[1, 2]", "holds a list"),
                                       ('{"threshold": 0.5}', "missing")])
def test_a_malformed_calibration_file_names_the_file(adapter_copy, text, says):
    from kwanzaa.inference import CalibrationError, load_calibration
    (adapter_copy / "calibration.json").write_text(text)
    with pytest.raises(CalibrationError) as e: load_calibration(adapter_copy)
    assert str(adapter_copy / "calibration.json") in str(e.value) and says in str(e.value)


def test_damaged_adapter_weights_are_named_as_damage_not_another_base(adapter_copy, tiny_model_dir):
    from kwanzaa.inference import InferenceError, load_for_inference
    rec = adapter_copy / "kwanzaa_adapter.json"
    rec.write_text(json.dumps(json.loads(rec.read_text()) | {"weights_sha256": "0" * 64}))
    with pytest.raises(InferenceError) as e: load_for_inference(str(tiny_model_dir), adapter_dir=adapter_copy)
    assert "is damaged" in str(e.value) and "another base" not in str(e.value) and "trained on" not in str(e.value)


def test_a_lone_surrogate_is_refused_before_the_tokenizer():
    from kwanzaa.inference import InferenceError, _check_question
    with pytest.raises(InferenceError) as e: _check_question("When is Kwanzaa \ud800 celebrated?")
    assert "lone surrogate at position 16" in str(e.value)


def test_the_question_cap_counts_tokens(tiny_model_dir):
    from kwanzaa.inference import MAX_QUESTION_TOKENS, InferenceError, _check_question, _check_question_tokens
    from kwanzaa.loader import load_tokenizer
    tok = load_tokenizer(str(tiny_model_dir))
    emoji = "\U0001F600" * 1000          # under the character cap, far over the token cap
    _check_question(emoji)
    with pytest.raises(InferenceError) as e: _check_question_tokens(emoji, tok)
    assert f"the limit is {MAX_QUESTION_TOKENS}" in str(e.value) and len(str(e.value)) < 300
    _check_question_tokens("When was Kwanzaa created?", tok)
