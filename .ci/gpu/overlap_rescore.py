"""Re-score committed generations as their `+overlap` arm (issue #25): no model runs; the overlap arm reads its
generation arm's predictions.jsonl, re-chooses each cited passage's sentences (kwanzaa.contract.choose_sentences) and
writes the arm's folder beside it. The prompts are checked against the examples with the base tokenizer.

    python .ci/gpu/overlap_rescore.py EVAL_DIR ARM [--live]
EVAL_DIR: a run's eval folder (dataset contexts; with --live its live/ folder is used and the golden items are re-made
through the project's own BM25, as compare_arms_live made them). ARM: the generation arm, e.g. adapter+extractive+calibrated."""
import sys
from pathlib import Path

from kwanzaa.config import load_config
from kwanzaa.corpus import Retriever, build_corpus
from kwanzaa.evaluate import evaluate
from kwanzaa.live import live_examples
from kwanzaa.loader import load_tokenizer, resolve_model_path
from kwanzaa.records import arm_dirname

eval_dir, arm, live = Path(sys.argv[1]), sys.argv[2], "--live" in sys.argv
cfg = load_config("small-gpu")
corpus = build_corpus(cfg.data.sources_dir)
tok = load_tokenizer(resolve_model_path(cfg.model.base))
tok.padding_side = "left"
exs = "package:golden"
if live:
    eval_dir = eval_dir / "live"
    exs = live_examples(exs, Retriever(corpus), cfg.eval.top_k)[0]
src = eval_dir / arm_dirname(arm) / "predictions.jsonl"
m = evaluate(cfg, exs, arm + "+overlap", eval_dir / arm_dirname(arm + "+overlap"), corpus=corpus, tok=tok,
             source_predictions=src, command="python " + " ".join(sys.argv))
print(eval_dir, arm + "+overlap", {k: m[k] for k in ("citation_coverage", "citation_precision", "refusal_precision",
                                                     "refusal_recall", "key_fact_accuracy", "unsupported_sentence_rate")})
