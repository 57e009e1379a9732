"""cluster.yaml passes Ray's own cluster-config preparation and schema validation, offline."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
util = pytest.importorskip("ray.autoscaler._private.util")

CLUSTER_YAML = Path(__file__).resolve().parents[3] / "cluster.yaml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.fixture(scope="module")
def prepared(raw) -> dict:
    config = util.prepare_config(copy.deepcopy(raw))
    util.validate_config(config)
    return config


def test_validates_with_rays_schema(prepared):
    assert prepared["cluster_name"] == "lamcap"
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_gpu_worker_type_autoscales_from_zero(raw, prepared):
    gpu_types = {name: t for name, t in prepared["available_node_types"].items()
                 if t["resources"].get("GPU", 0) > 0}
    assert gpu_types, "no GPU worker node type"
    for name, node_type in gpu_types.items():
        assert name != prepared["head_node_type"]
        assert node_type["resources"]["GPU"] >= 2 and isinstance(node_type["resources"]["GPU"], int)
        assert all(isinstance(v, int) for v in node_type["resources"].values())
        assert raw["available_node_types"][name]["min_workers"] == 0 and node_type["max_workers"] >= 1
    head = prepared["available_node_types"][prepared["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0  # probe actors (num_gpus=1) never land on the head


def test_every_node_installs_lamcap_and_starts_ray_the_standard_way(prepared):
    mounted = prepared["file_mounts"]
    assert any(src in (".", "./") for src in mounted.values())
    for key in ("head_setup_commands", "worker_setup_commands"):  # prepare_config merges setup_commands in
        assert any("pip install" in c and dst in c for c in prepared[key] for dst in mounted)
    assert any("ray start --head" in c and "--autoscaling-config" in c for c in prepared["head_start_ray_commands"])
    assert any("ray start --address=$RAY_HEAD_IP:6379" in c for c in prepared["worker_start_ray_commands"])


def test_schema_rejects_an_unknown_key(raw):
    """The validation is real: a misspelt key fails it."""
    bad = copy.deepcopy(raw)
    bad["available_node_types"]["head"]["min_worker"] = 0
    with pytest.raises(Exception, match="min_worker"):
        util.validate_config(util.prepare_config(bad))


def test_every_node_pins_the_torch_the_makefile_pins(prepared):
    """Autoscaled nodes get the same torch (so the same CUDA build) as every other: actors must agree."""
    import re

    makefile = (Path(__file__).resolve().parents[3] / "Makefile").read_text()
    version = re.search(r"TORCH_CPU := torch==(\S+)", makefile).group(1)
    for key in ("head_setup_commands", "worker_setup_commands"):
        assert any(f"torch=={version}" in c and "pip install" in c for c in prepared[key])
