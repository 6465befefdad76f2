"The committed headline adapter (outputs/golden/adapter) answers on a fresh clone with no training: README's ask() example."
import json, os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADAPTER = ROOT / "outputs/golden/adapter"


def test_the_committed_adapter_is_bf16_and_calibrated_for_its_weights():
    from safetensors.torch import load_file
    import torch
    from kwanzaa.calibrate import load_calibration
    weights = load_file(str(ADAPTER / "adapter_model.safetensors"))
    assert {v.dtype for v in weights.values()} == {torch.bfloat16}
    rec = json.loads((ADAPTER / "kwanzaa_adapter.json").read_text())
    cal = load_calibration(ADAPTER, rec["base"], required=True)   # refused if the weights were not the calibrated ones
    assert rec["base"] == "embedded:smollm2" and cal.split == "package:validation" and 0 < cal.threshold < 1


@pytest.mark.skipif(not os.environ.get("KWANZAA_SLOW"), reason="loads the real SmolLM2 (~20 s); set KWANZAA_SLOW=1")
def test_readme_ask_example_runs_with_the_committed_adapter(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from kwanzaa.contract import AnswerDocument
    from kwanzaa.inference import ask
    doc = ask("When is Kwanzaa celebrated?", persona="educator", adapter_dir="outputs/golden/adapter")
    assert isinstance(doc, AnswerDocument) and doc.answer.text
    assert doc.sources and doc.integrity.citations_provided   # it answers from a retrieved passage and cites it
    off_topic = ask("What is the capital of Peru?", persona="educator", adapter_dir="outputs/golden/adapter")
    assert off_topic.answer.completeness == "none" and not off_topic.sources
