"""Shared pytest fixtures: offline by construction, tiny models built on the fly."""
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
from hypothesis import settings, HealthCheck

settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    "A tiny random Llama-architecture model + ChatML tokenizer, built offline (well under a second)."
    from kwanzaa.loader import make_tiny_model
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", family="chatml")
