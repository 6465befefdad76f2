"""Two processes (gloo, CPU) train the tiny model with kwanzaa.trainer.train unchanged under torchrun:
each rank sees its own shard of every global batch, and the adapter equals a single-process run's at equal global
batch (1 process x accumulation 2 == 2 processes x accumulation 1)."""
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
    one = [sys.executable, "-m", "kwanzaa.bench", "shard-check", "--model", str(model), "--steps", "2"]
    _run(one + ["--out", str(tmp / "single"), "--accumulation", "2"], tmp)
    # torchrun: accelerate's own launcher starts one process for --cpu unless MPI is set up; the Trainer inside
    # (accelerate) still builds the gloo process group from torchrun's environment
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
          "-m", "kwanzaa.bench", "shard-check", "--model", str(model), "--steps", "2", "--out", str(tmp / "ddp"), "--accumulation", "1"], tmp)
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
