"""Two processes (gloo, CPU) train the tiny model with kwanzaa.trainer.train unchanged under torchrun:
each rank sees its own shard of every global batch, and the adapter equals a single-process run's at equal global
batch (1 process x accumulation 2 == 2 processes x accumulation 1)."""
from conftest import wait_for_file
import json, os, subprocess, sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from kwanzaa.loader import make_tiny_model

ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
           KWANZAA_PROGRESS="none", CUDA_VISIBLE_DEVICES="")


def _run(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mp")
    model = make_tiny_model(tmp / "tiny")
    one = [sys.executable, "-m", "kwanzaa", "bench", "shard-check", "--model", str(model), "--steps", "2"]
    _run(one + ["--out", str(tmp / "single"), "--accumulation", "2"], tmp)
    # torchrun: accelerate's own launcher starts one process for --cpu unless MPI is set up; the Trainer inside
    # (accelerate) still builds the gloo process group from torchrun's environment
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
          "-m", "kwanzaa", "bench", "shard-check", "--model", str(model), "--steps", "2", "--out", str(tmp / "ddp"), "--accumulation", "1"], tmp)
    seen = lambda d, r: json.loads((tmp / d / f"seen.rank{r}.json").read_text())
    return tmp, seen("single", 0), seen("ddp", 0), seen("ddp", 1)


def test_ranks_see_their_own_shards(runs):
    _, single, r0, r1 = runs
    assert r0["world_size"] == r1["world_size"] == 2 and single["world_size"] == 1
    assert len(r0["seen"]) == len(r1["seen"]) == 2           # 2 steps x batch 1 x accumulation 1 each
    assert not set(r0["seen"]) & set(r1["seen"])              # disjoint shards
    assert sorted(r0["seen"] + r1["seen"]) == sorted(single["seen"])  # together: the single process's global batches


def test_adapter_matches_single_process(runs):
    tmp, single, r0, _ = runs
    a = load_file(Path(single["adapter"]) / "adapter_model.safetensors")
    b = load_file(Path(r0["adapter"]) / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    moved = max(float((v - 0).abs().max()) for k, v in a.items() if "lora_B" in k)
    assert moved > 0                                          # training changed the adapter
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6)
    assert abs(r0["train_loss"] - single["train_loss"]) <= 1e-4 * abs(single["train_loss"])


CHILD = """
import json, sys, time
from transformers import TrainerCallback
from kwanzaa.config import load_config
from kwanzaa.trainer import train
model, out, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
class Pause(TrainerCallback):   # slows the run so the test can stop it between checkpoints
    def on_step_end(self, args, state, control, **kw): time.sleep(pause)
convs = [[{"role": "system", "content": "Answer from the passages."},
          {"role": "user", "content": f"Passages:\\n[1] Note {i}\\nItem {i} is number {i * 7 % 11}.\\n\\nQuestion: what is item {i}?"},
          {"role": "assistant", "content": json.dumps({"status": "answered", "citations": [1], "answer": f"Item {i} is {i * 7 % 11} [1].", "unknowns": []})}]
         for i in range(16)]
cfg = load_config("cpu", overrides={"model.base": model, "model.device": "cpu", "lora.dropout": 0.0, "training.max_steps": 6,
                                   "training.per_device_train_batch_size": 1, "training.gradient_accumulation_steps": 1,
                                   "training.save_steps": 2, "training.save_total_limit": 5, "training.logging_steps": 1,
                                   "training.torch_threads": 1, "training.max_seq_length": 512, "model.dtype": "float32"})
train(cfg, out, convs, device="cpu", callbacks=[Pause()], command="test_multiprocess_train resume")
"""


def test_two_process_run_killed_after_a_checkpoint_resumes_to_the_same_adapter(tmp_path):
    "Two gloo processes sharing one run directory: killed after a checkpoint, the same command resumes from it, and "
    "the adapter equals an uninterrupted two-process run's."
    import signal, time
    model = make_tiny_model(tmp_path / "tiny")
    child = tmp_path / "child.py"; child.write_text(CHILD)
    launch = lambda out, pause, port: [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                       "--master_port", str(port), str(child), str(model), str(out), str(pause)]
    _run(launch(tmp_path / "whole", 0, 29541), tmp_path)
    out = tmp_path / "killed"
    p = subprocess.Popen(launch(out, 1.5, 29542), cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    first = out / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    wait_for_file(first, p, 300)
    time.sleep(0.5)
    import psutil
    procs = psutil.Process(p.pid).children(recursive=True) + [psutil.Process(p.pid)]
    for q in procs: q.kill()                                      # the launcher and both workers, at once
    psutil.wait_procs(procs, timeout=60); p.wait(60); p.stdout.close()
    assert not (out / "checkpoints" / "checkpoint-6").exists()    # killed mid-run, before the last checkpoint
    assert not (out / "adapter").exists()                       # it really was cut short
    _run(launch(out, 0, 29543), tmp_path)
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and m["resumed_from"] and m["resumed_from"].split("-")[-1] in ("2", "4")
    assert m["distributed"]["world_size"] == 2 and m["metrics"]["global_step"] == 6
    a = load_file(tmp_path / "whole" / "adapter" / "adapter_model.safetensors")
    b = load_file(out / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    for k in a: torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6)
