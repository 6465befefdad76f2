"The decision comparison in outputs/golden/decisions.json is what the command computes from the committed predictions."
import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_decisions_file_is_reproduced_from_the_committed_predictions(tmp_path):
    out = tmp_path / "decisions.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    p = subprocess.run([sys.executable, "-m", "kwanzaa.calibrate", "decisions", "outputs/golden/eval", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    got, committed = json.loads(out.read_text()), json.loads((ROOT / "outputs/golden/decisions.json").read_text())
    assert got["decisions"] == committed["decisions"] and got["check_threshold"] == committed["check_threshold"]
    assert got["provenance"]["data_hash"] == committed["provenance"]["data_hash"]
    cal = got["decisions"]["calibrated threshold (adapter+constrained+calibrated)"]
    metrics = json.loads((ROOT / "outputs/golden/eval/adapter_constrained_calibrated/metrics.json").read_text())
    assert cal["refusal_precision"] == metrics["refusal_precision"] and cal["refusal_recall"] == metrics["refusal_recall"]
    assert "refusal precision" in p.stdout
