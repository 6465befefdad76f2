"""One cold ask() in a fresh process, as README's example runs it, with eval.sentence_choice set from argv[1] (rank, the
default, or overlap): the A/B of the unit ranker's cost on a first answer (issue #25), timed from outside by farm-bench:

    HF_HUB_OFFLINE=1 farm-bench -n 3 --timeout 600 --vs '.venv/bin/python outputs/golden/ask_cold_ab.py overlap' \
        -- .venv/bin/python outputs/golden/ask_cold_ab.py rank"""
import sys
from kwanzaa.inference import _config_for_adapter, ask
A = "outputs/golden/adapter"
cfg = _config_for_adapter(A)
cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"sentence_choice": sys.argv[1]})})
doc = ask("Besides Habari gani, what Swahili phrase do people use to wish each other a happy Kwanzaa?", adapter_dir=A, cfg=cfg)
assert doc.answer is not None
