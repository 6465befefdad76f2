"""README's decision block (issue #28 item 5) from small fake result files: measured rows beside the seed's and the
estimator's values, 16-bit LoRA alone or not, the seed's cards, quality pending or present, the plan's decision
missing, present, or read from a plan folder's steps."""
import json

from kwanzaa import readme as R
from kwanzaa import readme_seed as S

CARD = "NVIDIA H100 80GB HBM3"


def _files(tmp_path):
    rows = [dict(shape=s, preset=m, method=S.METHOD_NAMES[m], card=CARD, peak_allocated_gib=p, minutes_2_epochs=t)
            for s, m, p, t in (("s1b", "qlora", 2.0, 9.0), ("s1b", "lora", 4.0, 4.0), ("s8b", "qlora", 8.7, 14.5),
                               ("s8b", "lora", 22.6, 8.1))]
    measured = tmp_path / "measured.json"
    measured.write_text(json.dumps(dict(what="fake rows", minutes_2_epochs="s x n x 2", command="kwanzaa bench trainer", rows=rows)))
    errs = [dict(shape=r["shape"], method=r["preset"], estimated_peak_gib=r["peak_allocated_gib"] * 0.9,
                 peak_error=None if r["preset"] == "lora" else -0.1, estimated_minutes=r["minutes_2_epochs"] * 1.1,
                 minutes_error=0.1) for r in rows]
    hw = [dict(shape=s, method=m, gpu=g, card_gib=gib, fits=not (g == "T4" and s == "s8b" and m == "lora"), peak_gib=16.1,
               minutes=12.0, usd=None if g == "A100 40GB" else 0.25)
          for s in ("s1b", "s8b") for m in ("qlora", "lora") for g, gib in (("T4", 15.0), ("A100 40GB", 40.0))]
    estimates = tmp_path / "estimates.json"
    estimates.write_text(json.dumps(dict(
        errors_on_measured=errs, seed_hardware=hw, fit_rule="peak <= card", max_abs_error=dict(minutes=0.17, qlora_peak=0.04),
        lora_memory={s: dict(floor_gib=f, recorded_peak_gib=p) for s, f, p in (("s1b", 2.5, 4.0), ("s8b", 15.6, 22.6))},
        seed_estimates=dict(shape="s8b", qlora_gb=[10, 12], lora_gb=[28, 32], qlora_minutes=35, lora_minutes=25,
                            qlora_usd=[5, 10], lora_usd=[10, 15], qlora_cards="RTX 4090", lora_cards="A100"))))
    return measured, estimates


def _metrics(cov, n, arm="adapter+extractive+calibrated+overlap"):
    return {arm: dict(citation_coverage=cov, citation_precision=0.5, refusal_precision=0.6,
                                                  refusal_recall=0.9, key_fact_accuracy=0.0,
                                                  counts=dict(citation_coverage=[round(cov * n), n]))}


def test_missing_quality_and_plan_give_pending_lines(tmp_path):
    measured, estimates = _files(tmp_path)
    md = S.decision_table(measured, estimates, tmp_path / "none" / "summary.json", tmp_path / "none" / "decision.json",
                          tmp_path / "none" / "alone.json")
    assert md.count(f"| {CARD} |") == 4 and "estimated, not measured" not in md
    assert "| s8b | QLoRA | NVIDIA H100 80GB HBM3 | 10-12 GB | 7.83 GiB (-10%) | **8.70 GiB** | 35 min |" in md
    assert "| s1b | QLoRA | NVIDIA H100 80GB HBM3 | - |" in md            # the seed estimated its 8B-class base only
    assert "| 20.34 GiB | **22.60 GiB** (with QLoRA's model still loaded) |" in md   # no alone record: no error on it
    assert "| T4 (15 GiB) | yes, 12 min, $0.25 | yes, 12 min, $0.25 | yes, 12 min, $0.25 | no (16.1 GiB) |" in md
    assert "yes, 12 min, no price" in md and "minutes within 17%" in md
    assert "pending: `" + (tmp_path / "none" / "summary.json").as_posix() + "` is not there yet" in md
    assert "has no `" + (tmp_path / "none" / "decision.json").as_posix() + "` yet" in md


def test_present_quality_gives_ratios_and_plan_names_the_winner(tmp_path):
    measured, estimates = _files(tmp_path)
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(dict(what="both methods", card=CARD, runs=dict(
        qlora=dict(what="qlora run", dataset=_metrics(0.75, 28), live=_metrics(0.5, 24)),
        lora=dict(what="lora run", dataset=_metrics(0.8, 28), live=_metrics(0.5, 24))))))
    plan = tmp_path / "decision.json"
    plan.write_text(json.dumps(dict(decision="03-full-r32 (rank 32) meets every target: ship it", steps=[
        dict(step="02-full-r16", gate=dict(met=False, missed={"citation_coverage": {}})),
        dict(step="03-full-r32", gate=dict(met=True, missed={}))])))
    md = S.decision_table(measured, estimates, summary, plan, tmp_path / "none.json")
    assert "| citation coverage | the dataset's | 75% (21/28) | 80% (22/28) | 94% | 98-99% |" in md
    assert "| citation coverage | retrieved | 50% (12/24) | 50% (12/24) | 100% | 98-99% |" in md
    assert "| key fact accuracy | the dataset's | 0% | 0% | - | 98-99% |" in md   # no ratio of zeros
    assert "**03-full-r32 (rank 32) meets every target: ship it** (02-full-r16: missed citation_coverage; " \
           "03-full-r32: met every target)" in md
    assert f"Card: {CARD}" in md and "pending" not in md


def test_update_readme_rewrites_only_the_named_blocks(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- kwanzaa:decision_cpu -->\nstale table\n<!-- /kwanzaa:decision_cpu -->\n"
                      "<!-- kwanzaa:golden -->\nkept by its owner\n<!-- /kwanzaa:golden -->\n")
    assert R.update_readme(readme, tmp_path, blocks=["decision_cpu"]) is False
    text = readme.read_text()
    assert "kept by its owner" in text and "stale table" not in text and "The CPU sweep" in text


def _alone(tmp_path):
    rec = lambda shape, peak, s, tps: dict(shape=shape, preset="lora", device=CARD, peak_alloc_gib=peak, seconds_per_sequence=s,
                                           examples=773, tokens_per_s=tps, step_s=[11.93, 9.68, 9.36, 8.43], steps=4, warmup=2,
                                           start_alloc_gib=0.0)
    f = tmp_path / "alone.json"
    f.write_text(json.dumps(dict(card=CARD + " (session 8)", command="kwanzaa bench trainer --paths lora",
                                 records=[rec("s1b", 2.82, 0.4377, 1817.0), rec("s8b", 16.31, 0.5562, 1430.0)])))
    return f


def test_alone_record_gives_lora_memory_and_both_timings(tmp_path):
    measured, estimates = _files(tmp_path)
    d = json.loads(measured.read_text())
    for r in d["rows"]: r["tokens_per_s"] = 2520.0 if r["shape"] == "s8b" else 5263.0
    measured.write_text(json.dumps(d))
    md = S.decision_measured_table(measured, estimates, _alone(tmp_path))
    assert "| **16.31 GiB** (alone in its process) |" in md and "22.60 GiB" not in md
    assert "**14.3** alone (fresh process); **8.1** after QLoRA (warm process) |" in md   # 0.5562 x 773 x 2 / 60
    assert "8.91 (-38% vs alone, +10% vs after QLoRA)" in md
    assert "**These timings are not settled** (both methods alone with more steps: the next table): 4 steps (2 warm-up)" in md and "moves it 1.8-2.9x" in md
    assert "s8b: 1,430 tokens/s alone (step seconds [11.9, 9.7, 9.4, 8.4]) against 2,520 after QLoRA" in md
    assert f"({CARD} (session 8); `kwanzaa bench trainer --paths lora`)" in md and "start_alloc_gib 0.0, 0.0" in md


def test_quality_reads_the_headline_arm_labels_lora_and_keeps_the_caveat(tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(dict(what="both methods", card=CARD, headline_arm="arm+x", note="one run per method", runs=dict(
        qlora=dict(what="qlora run", dataset=_metrics(0.75, 28, "arm+x"), live=_metrics(0.5, 24, "arm+x")),
        lora=dict(what="float32 base", dataset=_metrics(0.8, 28, "arm+x"), live=_metrics(0.5, 24, "arm+x"))))))
    md = S.decision_quality_table(summary)
    assert "| golden set, `arm+x` | passages | QLoRA | LoRA (unquantized base) | QLoRA / LoRA | seed's claim |" in md
    assert "| citation coverage | the dataset's | 75% (21/28) | 80% (22/28) | 94% | 98-99% |" in md
    assert "LoRA (unquantized base): float32 base. Caveat: one run per method." in md


def _step(plan, name, thresholds, done, started=(), adapter=None):
    s = plan / name
    (s / "eval").mkdir(parents=True)
    (s / "run_config.json").write_text(json.dumps(dict(adapter=dict(method="qlora"), lora=dict(r=16), data=dict(golden="package:validation"),
                                                      eval=dict(thresholds=thresholds))))
    for m in done: (s / f"{m}.done.json").write_text("{}")
    for m in started: (s / f"{m}.started.json").write_text("{}")
    if adapter is not None: (s / "eval" / "comparison.json").write_text(json.dumps(dict(adapter=adapter)))


def test_plan_folder_without_decision_is_described_from_its_steps(tmp_path):
    plan = tmp_path / "plan"
    t = dict(json_parse_rate=1.0, refusal_precision=0.85)
    _step(plan, "01-pilot", t, ("train", "evaluate"), adapter=dict(json_parse_rate=1.0, refusal_precision=0.9, n=10))
    _step(plan, "02-full-r16", t, ("train", "evaluate"), adapter=dict(json_parse_rate=0.96, refusal_precision=0.43, n=84))
    _step(plan, "03-full-r32", t, ("train",), ("evaluate",), adapter=dict(json_parse_rate=1.0, refusal_precision=0.5, n=84))
    line = S.plan_decision_line(plan)
    assert line.startswith(f"The gated plan (`{plan.as_posix()}`, gated on `package:validation`) did not finish: no `decision.json`.")
    assert "01-pilot (qlora, r 16, 10 items): finished; met every target;" in line
    assert "02-full-r16 (qlora, r 16, 84 items): finished; missed json parse rate 96% < 100%, refusal precision 43% < 85%;" in line
    assert ("03-full-r32 (qlora, r 16, 84 items): trained, its evaluation cut off (no evaluate.done.json); the scores it wrote "
            "missed refusal precision 50% < 85%; 04-lora-16bit: not started.") in line
    (plan / "decision.json").write_text(json.dumps(dict(decision="none met", steps=[])))
    assert "**none met**" in S.plan_decision_line(plan)          # a plan's own decision wins over its steps
    assert "pending" in S.plan_decision_line(tmp_path / "empty")


def test_finished_plan_names_each_steps_missed_values_minutes_and_cost(tmp_path):
    plan = tmp_path / "plan"
    t = dict(json_parse_rate=1.0, refusal_precision=0.85)
    _step(plan, "01-pilot", t, ("train", "evaluate"), adapter=dict(json_parse_rate=1.0, refusal_precision=0.9, n=10))
    _step(plan, "02-full-r16", t, ("train", "evaluate"), adapter=dict(json_parse_rate=0.96, refusal_precision=0.43, n=84))
    gate = lambda met, missed: dict(met=met, missed={k: {} for k in missed})
    steps = [dict(step="01-pilot", gate=gate(True, ()), seconds=150.0, device="H100"),
             dict(step="02-full-r16", gate=gate(False, ("refusal_precision",)), seconds=414.0, device="H100")]
    (plan / "decision.json").write_text(json.dumps(dict(decision="none met", steps=steps, total_hours=0.16, total_cost_usd=0.47)))
    (plan / "RUN.md").write_text("how")
    line = S.plan_decision_line(plan)
    assert line.startswith(f"The gated plan (`{(plan / 'decision.json').as_posix()}`): **none met** (01-pilot (qlora, r 16, 10 items): "
                           "finished; met every target; 02-full-r16 (qlora, r 16, 84 items): finished; missed json parse rate 96%")
    assert "Minutes per step (its train + evaluate records, on H100): 01-pilot 2.5, 02-full-r16 6.9; 0.16 h and 0.47 USD in all." in line
    assert line.endswith(f"How it ran: `{(plan / 'RUN.md').as_posix()}`.\n")
