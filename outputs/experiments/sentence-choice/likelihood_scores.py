# experiment: choose the extractive sentence by likelihood vs greedy, on validation (issue #25)
import json, sys, time, torch, re
from kwanzaa.config import load_config
from kwanzaa.inference import load_for_inference, prompt_text
from kwanzaa.examples import load_examples
from kwanzaa.prompt import render_messages
from kwanzaa.contract import copy_units, extractive_sentence, parse, content_words, AnswerCore
from kwanzaa.evaluate import grounded_facts, gold_positions
torch.set_num_threads(2)
split = sys.argv[1] if len(sys.argv) > 1 else "validation"
preds_path = sys.argv[2]
cfg = load_config("small-gpu", overrides={"model.device": "cpu", "model.dtype": "float32"}) if False else None
from kwanzaa.config import load_config as lc
cfg = lc("small-gpu")
cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"device": "cpu", "dtype": "float32"})})
model, tok = load_for_inference(cfg, "/tmp/kw/ep6")
exs = {e.id: e for e in load_examples(f"kwanzaa/datasets/{split}.jsonl")}
from kwanzaa.corpus import build_corpus
from kwanzaa.examples import example_messages
corpus = build_corpus(cfg.data.sources_dir)
preds = {}
for l in open(preds_path):
    r = json.loads(l); preds[r["id"]] = r
out = []
t0 = time.time()
for i, (eid, p) in enumerate(preds.items()):
    ex = exs[eid]
    core = parse(p["text"], n_passages=len(ex.context)).core
    if core is None or core.status not in ("answered", "partial") or not core.citations: continue
    msgs = example_messages(ex, corpus, with_target=False); ctx = [corpus.get(c) for c in ex.context]
    cites = list(core.citations)
    prefix = prompt_text(tok, msgs) + json.dumps({"status": core.status, "citations": cites}, ensure_ascii=False)[:-1] + ', "answer": "'
    pids = tok(prefix, add_special_tokens=False).input_ids
    with torch.inference_mode():
        o = model(input_ids=torch.tensor([pids]), use_cache=True)
    picks = {}
    chosen = {"sum": [], "mean": [], "lex": [], "oracle": []}
    qw = content_words(ex.question); row_units = []
    for j, pn in enumerate(cites):   # one unit per cited passage, scored after the prefix alone (first passage) 
        units = copy_units(ctx[pn - 1].text)
        cands = [json.dumps(extractive_sentence(u, pn), ensure_ascii=False)[1:-1] for u in units]
        ids = [tok(prefix + c, add_special_tokens=False).input_ids[len(pids):] for c in cands]
        L = max(map(len, ids))
        import copy as cp
        cache = cp.deepcopy(o.past_key_values); cache.batch_repeat_interleave(len(ids))
        inp = torch.full((len(ids), L), tok.pad_token_id); att = torch.zeros((len(ids), len(pids) + L), dtype=torch.long)
        att[:, :len(pids)] = 1
        for k, x in enumerate(ids): inp[k, :len(x)] = torch.tensor(x); att[k, len(pids):len(pids)+len(x)] = 1
        first = torch.log_softmax(o.logits[0, -1].float(), -1)
        with torch.inference_mode():
            lg = model(input_ids=inp, attention_mask=att, past_key_values=cache).logits.float()
        lp = torch.log_softmax(lg, -1)
        sums, means = [], []
        for k, x in enumerate(ids):
            s = first[x[0]].item() + sum(lp[k, t - 1, x[t]].item() for t in range(1, len(x)))
            sums.append(s); means.append(s / len(x))
        lex = [len(qw & content_words(u)) / (1 + 0.0 * len(u)) for u in units]
        row_units.append({"pn": pn, "units": units, "sum": sums, "mean": means, "ntok": [len(x) for x in ids], "lex": lex,
                          "hits": [sum(1 for f in ex.gold.key_facts if f.casefold() in u.casefold()) for u in units]})
        for name, sc in (("sum", sums), ("mean", means), ("lex", lex)):
            chosen[name].append(extractive_sentence(units[max(range(len(units)), key=sc.__getitem__)], pn))
        facts = ex.gold.key_facts
        hit = [sum(1 for f in facts if f.casefold() in u.casefold()) for u in units]
        chosen["oracle"].append(extractive_sentence(units[max(range(len(units)), key=hit.__getitem__)], pn))
    row = {"id": eid, "category": ex.category, "gold_status": ex.gold.status, "facts": ex.gold.key_facts,
           "greedy": core.answer}
    gp = gold_positions(ex); row["units"] = row_units; row["cites"] = cites; row["question"] = ex.question
    for name, ss in chosen.items():
        row[name] = " ".join(ss)
    for name in ["greedy", *chosen]:
        c = AnswerCore(status=core.status, citations=cites, answer=row[name], unknowns=core.unknowns)
        f = grounded_facts(c, ex.gold.key_facts, gp)
        row[name + "_ok"] = bool(ex.gold.key_facts) and len(f) == len(ex.gold.key_facts)
    out.append(row)
    print(i, eid, {k: row[k + "_ok"] for k in ["greedy", *chosen]}, f"{time.time()-t0:.0f}s", flush=True)
json.dump(out, open(f"/tmp/kw/pick/{split}.json", "w"), indent=1)
sc = [r for r in out if r["facts"] and r["gold_status"] in ("answered", "partial")]
for k in ["greedy", "sum", "mean", "lex", "oracle"]:
    print(k, sum(r[k + "_ok"] for r in sc), "/", len(sc))
