"""The estimator's refit on the seed's measured rows (issue #28 item 2): per-method overhead, the dequantisation term,
the 16-bit LoRA memory bracket, and that the H200 calibration's own estimates are unchanged."""
import copy, json

import pytest

from kwanzaa import estimate as E
from kwanzaa.hardware import model_config, param_counts

LENGTHS = [700, 800, 900] * 10


def _row(shape, preset, s_per_seq, peak):
    return dict(shape=shape, preset=preset, method=preset, seconds_per_sequence=s_per_seq, peak_allocated_gib=peak,
                minutes_2_epochs=s_per_seq * len(LENGTHS) * 2 / 60, card="NVIDIA H100 80GB HBM3")


def test_default_calibration_has_no_method_overhead_or_dequantisation():
    same = E.estimate("llama-3.1-8b", "T4", seq=1024, batch=1, accumulation=16, method="qlora")
    lora = E.estimate("llama-3.1-8b", "T4", seq=1024, batch=1, accumulation=16, method="lora")
    assert same["step_s"] == pytest.approx(lora["step_s"], rel=1e-12)   # the H200 fit: one overhead for both methods
    trained = E.estimate("llama-3.1-8b", "T4", seq=1024, batch=1, accumulation=16, method="qlora",
                         calibration=E.TRAINER_CALIBRATION)
    assert trained["step_s"] > same["step_s"]


def test_dequantisation_is_bandwidth_bound():
    cfg = model_config("llama-3.1-8b")
    t4, h100 = E.dequant_s(cfg, E.CARDS["T4"]), E.dequant_s(cfg, E.CARDS["H100 SXM"])
    assert t4 / h100 == pytest.approx(3.35 / 0.32, rel=1e-9)
    assert h100 == pytest.approx(3 * param_counts(cfg)["linear"] * (E.BYTES_NF4 + 2) / 3.35e12, rel=1e-12)


def test_fit_recovers_a_known_overhead_per_method():
    truth = dict(E.CALIBRATION, DEQUANT_PASSES=3, ALPHA_qlora=0.02, ALPHA_lora=0.005)
    rows = []
    for shape in ("llama-3.2-1b", "llama-3.1-8b"):
        for m in ("qlora", "lora"):
            s = E.estimate_model(shape, "H100 SXM", lengths=LENGTHS, method=m, calibration=truth, **E.SEED_RUN)["step_s"]
            rows.append(_row(shape, m, s, 1.0))
    fit = E.fit_trainer_overhead(rows, LENGTHS)
    assert fit["ALPHA_qlora"] == pytest.approx(0.02, rel=1e-9) and fit["ALPHA_lora"] == pytest.approx(0.005, rel=1e-9)
    errs = E.seed_decision_errors(rows, LENGTHS, fit)
    assert all(abs(e["minutes_error"]) < 0.01 for e in errs)
    assert [e["peak_error"] for e in errs if e["method"] == "lora"] == [None, None]   # no record of 16-bit LoRA alone
    alone = [dict(r, peak_allocated_gib=2.0, minutes_2_epochs=r["minutes_2_epochs"] * 2) for r in rows if r["preset"] == "lora"]
    errs = E.seed_decision_errors(rows, LENGTHS, fit, alone)
    for e in (e for e in errs if e["method"] == "lora"):
        assert e["measured_peak_gib"] == 2.0 and e["peak_error"] == pytest.approx(e["estimated_peak_gib"] / 2.0 - 1, abs=1e-3)
        assert e["minutes_error_alone"] == pytest.approx(-0.5, abs=0.01) and e["peak_from"] == "alone in its own process"
    assert all(e["peak_error"] == pytest.approx(e["estimated_peak_gib"] - 1, abs=1e-3) for e in errs if e["method"] == "qlora")


def test_lora_alone_rows_read_the_bench_records(tmp_path):
    rec = dict(shape="llama-3.2-1b", preset="lora", device="NVIDIA H100 80GB HBM3", tokens_per_s=1800.0,
               seconds_per_sequence=0.5, peak_alloc_gib=2.8, peak_reserved_gib=2.9, start_alloc_gib=0.0,
               step_s=[11.6, 6.1, 6.4, 7.6], steps=4, warmup=2, examples=773)
    f = tmp_path / "alone.json"
    f.write_text(json.dumps(dict(records=[rec, dict(rec, preset="qlora")])))
    (r,) = E.lora_alone_rows(f)
    assert r["minutes_2_epochs"] == pytest.approx(0.5 * 773 * 2 / 60) and r["peak_allocated_gib"] == 2.8
    assert r["card"] == "NVIDIA H100 80GB HBM3" and r["start_alloc_gib"] == 0.0


def test_lora_bracket_reads_the_leftovers_from_a_measured_file(tmp_path):
    mem = lambda after, peak: dict(gpu_allocated_after_load_mb=after, gpu_peak_allocated_mb=peak)
    pc = param_counts(model_config("llama-3.2-1b"))
    own_mb = (pc["total"] * 2 + pc["lora"] * 4) / 2**20
    recs = [dict(preset="qlora", peak_alloc_gib=2.0, trainer_peak_memory=mem(1500.0, 2000.0)),
            dict(preset="lora", peak_alloc_gib=(1500 + own_mb) / 1024, trainer_peak_memory=mem(1500 + own_mb, 1500 + own_mb))]
    f = tmp_path / "m.json"
    f.write_text(json.dumps(dict(rows=[], runs={"llama-3.2-1b": dict(records=recs)})))
    b = E.lora_memory_bracket(f)["llama-3.2-1b"]
    assert b["loaded_less_qlora_gib"] == pytest.approx(b["bf16_model_and_lora_gib"], abs=0.01)
    assert b["floor_gib"] == pytest.approx((pc["total"] * 2 + pc["lora"] * 16) / 2**30, abs=0.01)
    assert b["grew_while_training_mib"] == 0.0


def test_a_card_without_a_price_gives_minutes_and_no_cost():
    e = E.estimate_model("llama-3.2-1b", "A100 40GB", lengths=LENGTHS, calibration=E.TRAINER_CALIBRATION)
    f = E.estimate_model("llama-3.2-1b", "A100 80GB", lengths=LENGTHS, calibration=E.TRAINER_CALIBRATION)
    assert e["usd"] is None and f["usd"] > 0 and e["minutes"] > 0
    assert E.CARDS["A100 40GB"]["mem_gib"] == 40.0
