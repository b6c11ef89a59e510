"""Every shipped recipe trains on the CPU: loaded, checked, built and run for two steps with small images
by scripts/try_configs.py (in four shards, one process each). Graph siblings (recipes whose training graphs
differ only in shapes, see try_configs.OUTSIDE_THE_GRAPH) share a shard, so each group compiles its
graph once and runs the rest in PyNative mode."""

from pathlib import Path
from typing import List

import numpy as np
import pytest

from tests.helpers import ROOT, load_script

try_configs = load_script("scripts/try_configs.py")
graph_siblings, plan_modes, width_family = try_configs.graph_siblings, try_configs.plan_modes, try_configs.width_family
RECIPES = sorted((ROOT / "configs").rglob("*.yaml"))


def write_small_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    # 8 validation images: whole batches of try_configs' 4, so validation compiles one graph, not two.
    for split, classes in (("train", 10), ("val", 8)):
        for label in range(classes):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 255, (40, 40, 3)).astype(np.uint8)).save(folder / "0.png")
    return root


SHARDS = 4  # one try_configs process per shard; pytest-xdist runs shards side by side with other tests
# A graph-mode run costs about three PyNative ones (compile included): the weights that balance the shards.
GRAPH_COST, PYNATIVE_COST = 3, 1


def recipe_shards(data_dir: Path) -> List[List[Path]]:
    """The recipes in SHARDS lists of about equal cost, each group of graph siblings whole in one list."""
    groups = graph_siblings(RECIPES, str(data_dir))
    modes = plan_modes(RECIPES, str(data_dir))  # an Ascend recipe compiles its sunk step whatever its siblings
    cost = {id(group): sum(GRAPH_COST if modes[path] == "graph" else PYNATIVE_COST for path in group)
            for group in groups}
    shards: List[List[Path]] = [[] for _ in range(SHARDS)]
    loads = [0] * SHARDS
    for group in sorted(groups, key=lambda g: -cost[id(g)]):
        lightest = loads.index(min(loads))
        shards[lightest].extend(group)
        loads[lightest] += cost[id(group)]
    return [sorted(shard) for shard in shards]


def test_recipe_shards_cover_every_recipe_once_with_graph_siblings_together(tmp_path):
    data = write_small_folder(tmp_path / "images")
    shards = recipe_shards(data)
    assert sorted(p for shard in shards for p in shard) == RECIPES
    where = {p.name: i for i, shard in enumerate(shards) for p in shard}
    assert where["shufflenet_v1_g3_10_cpu.yaml"] == where["shufflenet_v1_g3_20_cpu.yaml"]
    assert where["shufflenet_v2_plus_small_cpu.yaml"] == where["shufflenet_v2_plus_large_cpu.yaml"]
    assert where["shufflenet_v1_g8_05_paper.yaml"] == where["shufflenet_v1_g8_10_paper.yaml"]  # lr, schedule


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(SHARDS))
def test_every_recipe_trains_two_steps_on_the_cpu(run_cli, tmp_path, shard):
    data = write_small_folder(tmp_path / "images")
    recipes = recipe_shards(data)[shard]
    proc = run_cli("scripts/try_configs.py", "--data_dir", data, *recipes, timeout=3000)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    ok = [line for line in proc.stdout.splitlines() if line.startswith("ok ")]
    assert len(ok) == len(recipes) > 10, output[-3000:]
    assert any("(graph," in line for line in ok), output[-3000:]
    # An Ascend recipe runs its own step Cell compiled and sunk, the NPU-only operations as CPU stand-ins.
    ascend = [line for line in ok if "_ascend.yaml" in line]
    assert ascend and all("(graph, sunk, NPU stand-ins," in line for line in ascend), output[-3000:]


def test_only_graph_siblings_of_a_recipe_already_run_skip_the_graph_compile(tmp_path):
    assert width_family("shufflenet_v1_g3_15") == "shufflenet_v1_g3"
    assert width_family("shufflenet_v2_plus_large") == "shufflenet_v2_plus"
    assert width_family("shufflenet_v2_large") == "shufflenet_v2_large"  # another structure, not a width
    recipes = {"a": ("shufflenet_v1_g3_05", "lr: 0.1"),
               "b": ("shufflenet_v1_g3_10", "lr: 0.1"),  # width only: PyNative
               "c": ("shufflenet_v1_g3_20", "lr: 0.2\nscheduler: linear_decay\nre_prob: 0.25"),  # outside the graph
               "d": ("shufflenet_v1_g3_05", "lr: 0.1\namp_level: O2"),  # another precision
               "e": ("shufflenet_v1_g3_05", "lr: 0.1\nweight_decay_filter: official"),  # other parameter groups
               "f": ("shufflenet_v1_g3_05", "lr: 0.1\nlabel_smoothing: 0.1"),  # another loss
               "g": ("shufflenet_v1_g8_05", "lr: 0.1"),  # another group count
               "h": ("shufflenet_v2_x1_0", "lr: 0.1")}  # another family
    files = []
    for name, (model, settings) in recipes.items():
        files.append(tmp_path / f"{name}.yaml")
        files[-1].write_text(f"model: '{model}'\n{settings}\n")
    modes = plan_modes(files, str(tmp_path))
    assert [modes[f] for f in files] == ["graph", "pynative", "pynative", "graph", "graph", "graph", "graph", "graph"]
