"""One shapes table: the model menu, the benchmark's model_config and the estimator all read hardware.SHAPES."""
import pytest

from kwanzaa import bench, estimate, hardware, loader


def test_menu_bench_and_estimator_read_the_same_numbers():
    for m in loader.MODEL_MENU.values():   # every menu model names a row of the one table
        assert m.shape in hardware.SHAPES
        assert m.config().to_dict() == hardware.model_config(m.shape).to_dict()
    menu = loader.MODEL_MENU["meta-llama/Llama-3.2-1B-Instruct"]
    assert bench.model_config is hardware.model_config and estimate.SHAPES is hardware.SHAPES is bench.SHAPES
    assert menu.arch["num_hidden_layers"] == 16


def test_changing_one_shape_changes_menu_bench_and_estimate(monkeypatch):
    menu = loader.MODEL_MENU["meta-llama/Llama-3.2-1B-Instruct"]
    before = estimate.estimate("llama-3.2-1b", "T4", seq=512, batch=1, accumulation=16)
    deeper = {**hardware.SHAPES["llama-3.2-1b"], "num_hidden_layers": 20}
    monkeypatch.setitem(hardware.SHAPES, "llama-3.2-1b", deeper)   # one entry of the table, restored after the test
    assert menu.arch["num_hidden_layers"] == menu.config().num_hidden_layers == 20            # the menu
    assert bench.model_config("llama-3.2-1b").num_hidden_layers == 20                          # the benchmark
    after = estimate.estimate("llama-3.2-1b", "T4", seq=512, batch=1, accumulation=16)         # the estimator
    assert after == estimate.estimate(dict(deeper), "T4", seq=512, batch=1, accumulation=16)
    assert after["terms_gib"]["weights"] > before["terms_gib"]["weights"] and after["step_s"] > before["step_s"]
    assert menu.param_count() == hardware.param_counts(hardware.model_config("llama-3.2-1b"))["total"]
    assert hardware.lora_param_count(menu.config(), r=16) == 11_272_192 * 20 // 16


def test_shape_errors_name_the_known_shapes():
    with pytest.raises(KeyError, match="known: tiny, smollm2-135m"):
        hardware.model_config("llama-9b")
