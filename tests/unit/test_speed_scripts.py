"""The arithmetic and parsing inside scripts/benchmark.py and the experiments (benchmarks/experiments/), loaded
as modules: ratios, tables, model selection, the guideline tables' FLOPs, profile summaries (their quick runs:
integration/test_speed_scripts.py)."""

import math
import sys

import pytest

from tests.helpers import load_script


def _rounds(*figures):
    """A framework's child results, one (train img/s, infer img/s, latency ms) per round."""
    return [{"round": i, "train_img_s": t, "infer_img_s": f, "latency_ms": lat}
            for i, (t, f, lat) in enumerate(figures)]


def test_benchmark_ratios_are_the_median_of_each_rounds_ratio():
    bench = load_script("scripts/benchmark.py")
    # round by round ours / torchvision in training: 1.5, 1.0, 5.0 (median 1.5; the medians' ratio would be 3.0)
    ours = bench.Result("m", "ours", rounds=_rounds((30, 100, 10), (10, 100, 10), (50, 100, 10)))
    torch = bench.Result("m", "torchvision", rounds=_rounds((20, 200, 15), (10, 200, 15), (10, 200, 15)))
    ort = bench.Result("m", "onnxruntime", rounds=[{"round": 1, "infer_img_s": 400.0, "latency_ms": 2.5}])
    failed = bench.Result("m", "mindcv", rounds=_rounds((20, 50, 20)), error="RuntimeError: boom")
    rat = bench.ratios([ours, torch, ort, failed])
    assert rat["m"]["torchvision"] == {"train": 1.5, "infer": 0.5, "latency": 1.5}
    assert math.isnan(rat["m"]["onnxruntime"]["train"])  # onnxruntime only infers; paired with round 2 only
    assert rat["m"]["onnxruntime"]["infer"] == 0.25 and rat["m"]["onnxruntime"]["latency"] == 0.25
    assert set(rat["m"]) == {"torchvision", "onnxruntime"}  # a failed framework has no ratio


def test_benchmark_table_shows_a_failed_framework_beside_the_others():
    bench = load_script("scripts/benchmark.py")
    args = bench.parse_args(["--threads", "2", "--repeats", "3"])
    args.framework_list = ["ours", "mindcv"]
    info = bench.machine_info(args, "python scripts/benchmark.py")
    ours = bench.Result("m", "ours", train_img_s=30.0, infer_img_s=100.0, latency_ms=10.0, first_step_s=8.0,
                        first_step_cpu_s=7.5, peak_rss_mb=300.0, rounds=_rounds((30, 100, 10)))
    failed = bench.Result("m", "mindcv", error="RuntimeError: boom")
    table = bench.markdown([ours, failed], info, ["torchvision: torch is not installed"])
    assert "| m | ours | 30.0 | 100.0 | 10.00 | 8.0 | 7.5 | 300 |" in table
    assert "| m | mindcv | failed: RuntimeError: boom | | | | | |" in table
    assert "alternating (ours, mindcv), 3 rounds, 2 threads each" in table
    assert "Skipped: torchvision: torch is not installed." in table


def test_benchmark_child_that_dies_becomes_a_one_line_error():
    bench = load_script("scripts/benchmark.py")
    run = bench.run_child([sys.executable, "-c", "import sys; print('noise'); sys.exit('out of memory')"], 1)
    assert run == {"error": "the process exited with status 1: out of memory"}
    assert bench.run_child([sys.executable, "-c", f"print({bench.CHILD_TAG!r} + '{{\"pid\": 7}}')"], 1) == {"pid": 7}


def test_benchmark_model_selection_accepts_all_names_and_patterns():
    bench = load_script("scripts/benchmark.py")
    from mindcv_shufflenet import list_models

    assert bench.select_models("all") == list_models() and len(list_models()) >= 24
    assert bench.select_models("shufflenet_v2_x1_0,shufflenet_v1_g3_*") == [
        "shufflenet_v2_x1_0", "shufflenet_v1_g3_05", "shufflenet_v1_g3_10", "shufflenet_v1_g3_15",
        "shufflenet_v1_g3_20"]
    with pytest.raises(ValueError, match="no model matches"):
        bench.select_models("mobilenet*")


def _macs(net, hw=56):
    """1x1/kxk conv multiply-adds per image of a guideline stack (spatial size kept by every conv)."""
    from mindspore import nn

    total = 0
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.Conv2d):
            k = cell.kernel_size[0] * cell.kernel_size[1]
            total += cell.in_channels // cell.group * cell.out_channels * k * hw * hw
    return total


@pytest.mark.parametrize("setup", ["gpu", "cpu"])
def test_guideline_tables_hold_flops_fixed_where_the_paper_does(setup):
    guide = load_script("benchmarks/experiments/guidelines.py")
    for table in (1, 2, 3):
        macs = [_macs(v.build()) for v in guide.table_variants(table, setup, 1)]
        assert max(macs) / min(macs) < 1.12, (table, macs)  # the paper's own rounding of channel counts
    g1 = guide.table_variants(1, setup, 2)
    assert [v.detail for v in g1][0] == ("(256, 256)" if setup == "gpu" else "(64, 64)")
    assert [v.paper for v in guide.table_variants(2, setup, 1)] == [row[2] for row in guide.G2_X1[setup]]
    assert all(v.paper is None for v in guide.table_variants(2, setup, 2))  # paper quoted at x1 only


def test_profile_summary_attributes_convolution_kernels_to_their_kind(tmp_path):
    prof = load_script("benchmarks/experiments/profile_step.py")
    from mindcv_shufflenet import create_model

    kinds = prof.conv_kinds(create_model("shufflenet_v2_x0_5"))
    assert kinds["features.1.branch_main.3"] == "depthwise 3x3" and kinds["first_conv.0"] == "stem 3x3"
    assert kinds["features.1.branch_main.0"] == "dense 1x1"
    assert prof.conv_kinds(create_model("shufflenet_v1_g3_05"))["features.1.branch_main_1.0"] == "grouped 1x1"
    scope = "Default/network-WithLossCell/_backbone-ShuffleNetV2/features-SequentialCell/1-ShuffleV2Block/" \
            "branch_main-SequentialCell/3-Conv2d"
    csv_file = tmp_path / "cpu_op_detail_info_0.csv"
    csv_file.write_text(
        "op_side,op_type,op_name,full_op_name,op_occurrences,op_total_time(ms),op_avg_time(ms)\n"
        f"Host,Conv2D,Conv2D-op0,{scope}/Conv2D-op0,2,30.0,15.0\n"
        f"Host,Conv2DBackpropFilter,Conv2DBackpropFilter-op1,Gradients/{scope}/Grad_Conv2D/Conv2DBackpropFilter-op1,2,50.0,25.0\n"
        "Host,MaxPoolGrad,MaxPoolGrad-op0,Gradients/Default/network-WithLossCell/_backbone-ShuffleNetV2/"
        "max_pool-MaxPool2d/Grad_MaxPool/MaxPoolGrad-op0,2,40.0,20.0\n"
        f"Host,Custom,Custom-op3,Gradients/{scope.replace('3-Conv2d', '3-DepthwiseConv2d')}/Grad_Custom/Custom-op3,"
        "2,8.0,4.0\n")
    assert prof.summarise(csv_file, kinds, steps=2) == [
        ("depthwise 3x3: weight grad", 25.0), ("MaxPoolGrad", 20.0), ("depthwise 3x3: forward", 15.0),
        ("depthwise 3x3 (fast kernel): gradients", 4.0)]
    v1_scope = "Default/network-WithLossCell/_backbone-ShuffleNetV1/features-SequentialCell/1-ShuffleV1Block/" \
               "branch_main_1-SequentialCell/0-Conv2d"
    csv_file.write_text("op_side,op_type,op_name,full_op_name,op_occurrences,op_total_time(ms),op_avg_time(ms)\n"
                        f"Host,Conv2D,Conv2D-op0,{v1_scope}/Conv2D-op0,1,3.0,3.0\n")
    v1_kinds = prof.conv_kinds(create_model("shufflenet_v1_g3_05"))
    assert prof.summarise(csv_file, v1_kinds, steps=1) == [("grouped 1x1: forward", 3.0)]


def test_benchmark_trains_a_network_with_auxiliary_heads_on_its_weighted_loss():
    """ShuffleNetV2.Large returns auxiliary logits in training: the benchmark's step weighs them as its recipe."""
    import mindspore as ms
    import numpy as np
    from mindspore import nn

    from mindcv_shufflenet.models.shufflenet_v2_large import ShuffleNetV2Large

    bench = load_script("scripts/benchmark.py")
    net = ShuffleNetV2Large((8, 8, 16, 32, 64, 128, 256, 64), "large", num_classes=10, drop_rate=0.0,
                            stage_repeats=(2, 2, 3, 2), groups=4, aux_channels=(16, 32, 48))
    net.set_train(True)
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
    y = ms.Tensor(np.array([1, 7], np.int32))
    outputs = net(x)
    assert isinstance(outputs, tuple) and len(outputs) == 4
    ce = nn.CrossEntropyLoss()
    expected = sum(w * float(ce(o, y).asnumpy()) for w, o in zip((1.0, 0.7, 0.5, 0.3), outputs))
    assert abs(float(bench._training_loss(net)(outputs, y).asnumpy()) - expected) < 1e-5 * max(1.0, expected)
    assert isinstance(bench._training_loss(ms.nn.Dense(2, 2)), nn.CrossEntropyLoss)


def test_compile_profile_reads_the_phases_back_from_mindspores_log():
    profile = load_script("benchmarks/experiments/profile_compile.py")
    log = "\n".join([
        "[INFO] PIPELINE(1,2,python):2026-12-01-02:44:30.000.000 [pipeline.cc:402] "
        "operator()] Status record: start type_inference action.",
        "[INFO] PIPELINE(1,2,python):2026-12-01-02:44:31.500.000 [pipeline.cc:404] "
        "operator()] Status record: end type_inference action.",
        "[INFO] OPTIMIZER(1,2,python):2026-12-01-02:44:31.600.000 [optimizer.cc:236] "
        "RunFunc] Start opt_a.r1.j0.renormalize",
        "[INFO] OPTIMIZER(1,2,python):2026-12-01-02:44:31.850.000 [optimizer.cc:243] "
        "RunFunc] End opt_a.r1.j0.renormalize.changed",
        "[INFO] OPTIMIZER(1,2,python):2026-12-01-02:44:32.000.000 [optimizer.cc:236] "
        "RunFunc] Start opt_a.r2.j0.renormalize",
        "[INFO] OPTIMIZER(1,2,python):2026-12-01-02:44:32.250.500 [optimizer.cc:243] "
        "RunFunc] End opt_a.r2.j0.renormalize.unchanged",
        "[INFO] PIPELINE(1,2,python):2026-12-01-02:44:33.000.000 [x.cc:436] "
        "CompileInner] [PROF]compile_graph costs 3000.5 msec.",
    ])
    actions, passes, totals = profile.parse_log(log)
    assert actions == {"type_inference": pytest.approx(1.5)}
    assert passes == {"opt_a.renormalize": pytest.approx(0.5005)}  # both rounds of the pass, summed
    assert totals == {"compile_graph": pytest.approx(3.0005)}
