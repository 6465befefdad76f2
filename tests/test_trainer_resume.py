"""A real training run killed with SIGKILL after a checkpoint exists resumes to the same adapter as an uninterrupted run."""
from conftest import wait_for_file
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kwanzaa.config import load_config
from kwanzaa.trainer import checkpoint_problem, list_checkpoints, train

torch.set_num_threads(1)

MESSAGES = [[{"role": "system", "content": "Answer from the passages as JSON."},
             {"role": "user", "content": f"[1] Note {i}\nThe number is {i}.\n\nQuestion: What is the number?"},
             {"role": "assistant", "content": json.dumps({"status": "answered", "citations": [1],
                                                          "answer": f"The number is {i} [1].", "unknowns": []})}]
            for i in range(8)]

# 8 conversations, batch 2, 3 epochs: 12 optimizer steps, a checkpoint every 3; 8-bit paged AdamW on a 4-bit base
OVERRIDES = {"model.device": "cpu", "training.epochs": 3, "training.per_device_train_batch_size": 2,
             "training.gradient_accumulation_steps": 1, "training.learning_rate": 5e-3, "training.save_steps": 3,
             "training.save_total_limit": 2, "training.logging_steps": 1, "training.gradient_checkpointing": False,
             "training.torch_threads": 1}

CHILD = textwrap.dedent("""
    import json, sys, time
    from transformers import TrainerCallback
    from kwanzaa.config import load_config
    from kwanzaa.trainer import train
    out, data, overrides, pause = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
    class Pause(TrainerCallback):   # slows the run down so the test can kill it between checkpoints
        def on_step_end(self, args, state, control, **kw): time.sleep(pause)
    train(load_config("qlora", overrides=overrides), out, json.loads(open(data).read()), callbacks=[Pause()])
""")


def test_sigkill_mid_run_then_resume_matches_uninterrupted(tiny_model_dir, tmp_path):
    over = {**OVERRIDES, "model.base": str(tiny_model_dir)}
    cfg = load_config("qlora", overrides=over)
    reference = train(cfg, tmp_path / "reference", MESSAGES)
    assert reference.global_step == 12

    data = tmp_path / "messages.json"
    data.write_text(json.dumps(MESSAGES))
    out = tmp_path / "interrupted"
    env = {**os.environ, "KWANZAA_PROGRESS": "lines", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(out), str(data), json.dumps(over), "0.4"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first = out / "checkpoints" / "checkpoint-3" / "trainer_state.json"
    wait_for_file(first, child, 240)
    time.sleep(0.6)   # now mid-run: past checkpoint-3, before step 12
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert not (out / "adapter").exists()   # the run did not finish
    steps = [int(p.name.split("-")[1]) for p in list_checkpoints(out / "checkpoints")]
    assert steps and max(steps) < 12

    with open(out / "train_log.jsonl", "a") as f: f.write('{"step": 99, "lo')   # as if killed mid-write
    resumed = train(cfg, out, MESSAGES)
    assert resumed.resumed_from is not None and Path(resumed.resumed_from).name in {f"checkpoint-{s}" for s in steps}
    assert resumed.global_step == 12
    assert checkpoint_problem(list_checkpoints(out / "checkpoints")[-1]) is None

    want = load_file(reference.adapter_dir / "adapter_model.safetensors")
    got = load_file(resumed.adapter_dir / "adapter_model.safetensors")
    assert want.keys() == got.keys() and len(want) == 2 * 7 * 2   # A and B, 7 projections, 2 layers
    for k in want:
        assert torch.allclose(want[k].float(), got[k].float(), rtol=1e-4, atol=1e-6), k
    assert all(want[k].abs().sum() > 0 for k in want if "lora_B" in k)   # B starts at zero: training moved it

    # the resumed run's log describes one run: each step logged once, in order
    log_steps = [json.loads(l)["step"] for l in resumed.log_path.read_text().splitlines() if '"loss"' in l]
    assert log_steps == list(range(1, 13))
    manifest = json.loads(resumed.manifest_path.read_text())
    assert manifest["status"] == "complete" and manifest["resumed_from"] == resumed.resumed_from


def test_ctrl_c_marks_the_run_interrupted_and_the_same_command_resumes(tiny_model_dir, tmp_path):
    "Ctrl-C (SIGINT) mid-run: one line on stderr (no traceback), exit 2, the manifest says 'interrupted' with the last "
    "checkpoint, and running the same command again resumes from it."
    over = {**OVERRIDES, "model.base": str(tiny_model_dir)}
    data = tmp_path / "messages.jsonl"
    data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in MESSAGES))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "kwanzaa", "trainer", "--preset", "qlora", "--out", str(out), "--conversations", str(data),
           *[a for k, v in over.items() for a in ("-p", f"{k}={v}")]]
    env = {**os.environ, "KWANZAA_PROGRESS": "lines", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    # a shell's background job inherits SIGINT ignored, and Python then never raises KeyboardInterrupt: restore it
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = out / "checkpoints" / "checkpoint-3" / "trainer_state.json"
    wait_for_file(first, child, 240, out=child.stderr)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    err = err.decode()
    if child.returncode == 0: pytest.skip("the run finished before the interrupt arrived")
    assert child.returncode == 2, err[-2000:]
    lines = [l for l in err.splitlines() if l.startswith("kwanzaa.trainer: error:")]
    assert len(lines) == 1 and "training interrupted; resume from" in lines[0] and "Traceback" not in err, err[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["last_checkpoint"].endswith(tuple(f"checkpoint-{n}" for n in (3, 6, 9)))
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed_from"] and manifest["metrics"]["global_step"] == 12
