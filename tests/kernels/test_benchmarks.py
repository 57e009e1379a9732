"""benchmarks/gpu.py --smoke: every section runs on the CPU at tiny sizes and writes its JSON and markdown."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

GPU_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem + "_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_gpu_benchmark_smoke_runs_every_section_on_the_cpu(tmp_path):
    result = load(GPU_SCRIPT).main(["--smoke", "--out", str(tmp_path)])
    sections = result["sections"]
    assert set(sections) == {"steps", "fixed", "generator", "competitors", "precision", "reach", "sweep"}
    assert not [name for name, value in sections.items() if isinstance(value, dict) and "error" in value]
    assert {(r["problem"], r["d"]) for r in sections["steps"]} == {("op", 8), ("op", 16), ("dp", 8), ("dp", 16)}
    assert all(r["wall_ms"] > 0 and r["device_ms"] is None for r in sections["steps"])  # no GPU: no device time
    assert [r["storage"] for r in sections["competitors"]] == ["float32", "bfloat16", "float32"]
    assert sections["generator"]["torch_per_s"] > 0 and "fused_per_s" not in sections["generator"]
    assert set(sections["precision"]["sat_probes"]["verdicts"]) == {"highest", "tf32", "bf16x3"}
    assert "skipped" in sections["sweep"]
    saved = json.loads((tmp_path / "smoke.json").read_text())
    assert saved["environment"]["torch"] and saved["smoke"] is True
    text = (tmp_path / "smoke.md").read_text()
    assert "## Adam steps" in text and "## Generator" in text and "## Matmul precision (OP)" in text
