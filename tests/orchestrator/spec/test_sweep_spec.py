"""Sweep spec: records, validation messages, TOML/preset/flag loading, store compatibility."""
from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lamcap.errors import InvalidInput
from lamcap.kernels.settings import SolverSettings
from lamcap.orchestrator.spec import Cell, Probe, SearchSettings, SweepSpec, load_spec, to_toml
from lamcap.orchestrator.spec.presets import PRESETS, preset_dict
from lamcap.orchestrator.spec.sweep import validate


def preset_spec(name: str) -> SweepSpec:
    return SweepSpec.from_dict(preset_dict(name))

ROOT = Path(__file__).resolve().parents[3]


def small(**changes) -> dict:
    raw = {"problems": ["op", "dp"], "solvers": ["adam", "hebbian"], "rhos": [1.0, 0.5], "ds": [8, 12],
           "seeds": 2, "solver_settings": {"max_steps": 500}, "search": {"curve_points": 2}}
    raw.update(changes)
    return raw


def test_no_torch_or_ray_at_import_time():
    code = ("import sys, lamcap.orchestrator.spec, lamcap.orchestrator.learners.threshold, "
            "lamcap.orchestrator.spec.presets; "
            "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("rho, d, rank", [(1.0, 8, 8), (0.5, 8, 4), (0.25, 2, 1), (0.5, 9, 4), (0.5, 11, 6),
                                          (0.75, 12, 9), (0.01, 16, 1)])
def test_cell_rank_is_python_round_at_least_one(rho, d, rank):
    cell = Cell("op", "adam", rho, d)
    assert cell.rank == rank == max(1, round(rho * d))
    assert cell.rho_eff == rank / d


def test_probe_key_and_alpha():
    probe = Probe(Cell("dp", "hebbian", 0.5, 12), seed=3, p=40, purpose="curve")
    assert probe.key == ("dp", "hebbian", 0.5, 12, 3, 40, "curve")
    assert probe.alpha == pytest.approx(40 * math.log(40) / 144)
    assert {probe.key: 1}[Probe(Cell("dp", "hebbian", 0.5, 12), 3, 40, "curve").key] == 1
    assert Probe(Cell("op", "adam", 1.0, 8), 0, 5).purpose == "search"


def test_cells_cover_the_product_sorted_and_respect_d_max():
    spec = SweepSpec.from_dict(small(ds=[16, 8, 12], d_max={"dp": 12}))
    cells = spec.cells()
    assert cells == sorted(cells) and len(set(cells)) == len(cells)
    expected = {(pr, so, rho, d) for pr in ("op", "dp") for so in ("adam", "hebbian") for rho in (1.0, 0.5)
                for d in ((8, 12, 16) if pr == "op" else (8, 12))}
    assert {(c.problem, c.solver, c.rho, c.d) for c in cells} == expected
    assert spec.ds_for("dp") == (8, 12) and spec.ds_for("op") == (8, 12, 16) and spec.max_d == 16


def test_d_max_keys_name_a_problem_a_solver_or_a_rank_fraction(tmp_path):
    spec = SweepSpec.from_dict(small(ds=[8, 12, 16, 24], d_max={"dp": 16, "rho=0.5": 12, "hebbian": 8}))
    got = {(c.problem, c.solver, c.rho, c.d) for c in spec.cells()}
    def cap(pr: str, so: str, rho: float) -> int:
        return min([24 if pr == "op" else 16] + [12] * (rho == 0.5) + [8] * (so == "hebbian"))

    want = {(pr, so, rho, d) for pr in ("op", "dp") for so in ("adam", "hebbian") for rho in (1.0, 0.5)
            for d in (8, 12, 16, 24) if d <= cap(pr, so, rho)}
    assert got == want
    assert spec.ds_for("dp") == (8, 12, 16) and spec.ds_for("op", "adam", 0.5) == (8, 12)
    path = tmp_path / "caps.toml"
    path.write_text(to_toml(spec))  # "rho=0.5" is no bare TOML key: written quoted
    assert '"rho=0.5" = 12' in path.read_text() and load_spec(str(path)) == spec


def test_an_lp_cap_lets_lp_share_a_spec_with_larger_dimensions():
    from lamcap.kernels.settings import LP_MAX_D

    big = LP_MAX_D + 8
    with pytest.raises(InvalidInput, match=f"d={big} with solver 'lp'"):
        SweepSpec.from_dict(small(solvers=["adam", "lp"], rhos=[1.0], ds=[8, big]))
    spec = SweepSpec.from_dict(small(solvers=["adam", "lp"], rhos=[1.0], ds=[8, big], d_max={"lp": LP_MAX_D}))
    assert {(c.solver, c.d) for c in spec.cells() if c.problem == "op"} == {("adam", 8), ("adam", big), ("lp", 8)}
def test_lp_cells_exist_only_at_rho_one_and_under_their_d_max():
    spec = SweepSpec.from_dict(small(solvers=["adam", "lp"], rhos=[1.0, 0.5], ds=[8, 12, 16], d_max={"lp": 12}))
    lp_cells = {(c.problem, c.rho, c.d) for c in spec.cells() if c.solver == "lp"}
    assert lp_cells == {(pr, 1.0, d) for pr in ("op", "dp") for d in (8, 12)}
    expected = {(r, d) for r in (1.0, 0.5) for d in (8, 12, 16)}
    assert {(c.rho, c.d) for c in spec.cells() if c.solver == "adam"} == expected
    assert SweepSpec.from_dict(spec.to_dict()) == spec
    from lamcap.kernels.settings import LP_MAX_D

    capped = small(solvers=["adam", "lp"], ds=[8, LP_MAX_D + 8], d_max={"lp": LP_MAX_D})
    assert max(c.d for c in SweepSpec.from_dict(capped).cells() if c.solver == "lp") == 8


def test_to_dict_round_trips_exactly_through_json():
    spec = SweepSpec.from_dict(small(d_max={"dp": 8}, device="cpu",
                                     search={"curve_points": 3, "curve_span": 0.2, "p_max": 999}))
    raw = spec.to_dict()
    assert json.loads(json.dumps(raw)) == raw
    assert SweepSpec.from_dict(json.loads(json.dumps(raw))) == spec
    assert SweepSpec.from_dict(raw).to_dict() == raw


def test_toml_round_trip(tmp_path):
    spec = SweepSpec.from_dict(small(d_max={"dp": 8}, rhos=[1, 0.75], solver_settings={"lr": 1e-3}))
    path = tmp_path / "sweep.toml"
    path.write_text(to_toml(spec))
    assert load_spec(str(path)) == spec
    assert spec.rhos == (1.0, 0.75) and isinstance(spec.rhos[0], float)


def test_example_file_loads():
    spec = load_spec(str(ROOT / "examples" / "sweep.toml"))
    assert spec.ds_for("dp") == (8, 12, 16) and spec.search.curve_points == 3


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_round_trip(name):
    spec = preset_spec(name)
    validate(spec)
    assert SweepSpec.from_dict(spec.to_dict()) == spec == load_spec(preset=name)


def test_presets_match_the_issues():
    demo, paper = preset_spec("demo"), preset_spec("paper")
    assert set(demo.solvers) == {"adam", "hebbian", "lp"} and set(paper.solvers) == {"adam", "hebbian"}
    assert {c.rho for c in demo.cells() if c.solver == "lp"} == {1.0}
    for spec in (demo, paper):
        assert set(spec.problems) == {"op", "dp"}
    assert set(demo.rhos) == {1.0, 0.5} and min(demo.ds) == 8 and demo.seeds == 3
    assert set(paper.rhos) == {1.0, 0.75, 0.5, 0.25} and paper.seeds == 8
    assert min(paper.ds_for("dp")) == 16 and max(paper.ds_for("dp")) == 256
    assert min(paper.ds_for("op")) == 16 and max(paper.ds_for("op")) == 512


def test_the_scale_presets_are_exact_to_d_64_with_the_oracle_on_the_same_seeds_to_d_32():
    scale, lp = preset_spec("scale"), preset_spec("scale-lp")
    assert set(scale.problems) == set(lp.problems) == {"op", "dp"} and set(scale.solvers) == {"adam", "hebbian"}
    top = {(c.problem, c.rho): max(x.d for x in scale.cells() if (x.problem, x.rho) == (c.problem, c.rho))
           for c in scale.cells()}
    assert top == {("op", 1.0): 64, ("dp", 1.0): 64, ("op", 0.5): 64, ("dp", 0.5): 64}
    assert scale.search.resolution == lp.search.resolution == 0 and not scale.resolution_for
    assert {c.d for c in lp.cells()} == {8, 12, 16, 24, 32} and lp.solvers == ("lp",)
    for cell in lp.cells():  # the oracle's seeds are among the gradient solver's
        adam = Cell(cell.problem, "adam", 1.0, cell.d)
        assert lp.seeds_of(cell) == scale.seeds_of(adam) >= (4 if cell.d >= 32 else 8)


BAD_VALUES = [
    ({"problems": ["op", "xp"]}, "'xp'"),
    ({"solvers": ["adam", "sgd"]}, "'sgd'"),
    ({"ds": [8, 1]}, "1"),
    ({"ds": [8, 12.5]}, "12.5"),
    ({"rhos": [0.0]}, "0.0"),
    ({"rhos": [1.5]}, "1.5"),
    ({"rhos": [-0.5]}, "-0.5"),
    ({"seeds": 0}, "seeds=0"),
    ({"seeds": 2.5}, "seeds=2.5"),
    ({"problems": []}, "problems is empty"),
    ({"ds": []}, "ds is empty"),
    ({"ds": [8, 8]}, "appears twice"),
    ({"ds": 8}, "ds=8"),
    ({"device": "tpu"}, "'tpu'"),
    ({"solvers": ["lp"], "rhos": [0.5, 0.25]}, "solver 'lp' needs rho = 1"),
    ({"solvers": ["lp"], "rhos": [1.0], "ds": [8, 1000]}, "d=1000 with solver 'lp'"),
    ({"d_max": {"xp": 8}}, "'xp'"),
    ({"d_max": {"lp": 4}}, "d_max.lp=4 leaves"),
    ({"d_max": {"dp": 1}}, "d_max.dp=1"),
    ({"d_max": {"dp": 4}}, "d_max.dp=4 leaves"),
    ({"d_max": {"rho=0.3": 8}}, "'rho=0.3' names no rank fraction"),
    ({"d_max": {"rho=half": 8}}, "'rho=half'"),
    ({"d_max": {"lp": 1}}, "d_max.lp=1"),
    ({"solver_settings": {"lr": -1.0}}, "lr=-1.0"),
    ({"solver_settings": {"momentum": 0.9}}, "solver_settings.momentum"),
    ({"search": {"curve_span": 2.0}}, "curve_span=2.0"),
    ({"search": {"p_max": 2}}, "p_max=2"),
    ({"search": {"resolution": 0.5}}, "resolution=0.5"),
    ({"search": {"resolution": -0.01}}, "resolution=-0.01"),
    ({"search": {"resolution": "fine"}}, "resolution='fine'"),
    ({"search": {"k": 2}}, "search.k"),
    ({"colour": "red"}, "'colour'"),
]


@pytest.mark.parametrize("change, named", BAD_VALUES)
def test_every_bad_value_is_named(change, named):
    with pytest.raises(InvalidInput, match="invalid sweep spec") as info:
        SweepSpec.from_dict(small(**change))
    assert named in str(info.value)


def test_missing_keys_are_named():
    raw = small()
    del raw["ds"], raw["seeds"]
    with pytest.raises(InvalidInput) as info:
        SweepSpec.from_dict(raw)
    assert "missing key 'ds'" in str(info.value) and "missing key 'seeds'" in str(info.value)


def test_all_bad_values_are_reported_at_once():
    raw = small(problems=["op", "xp"], solvers=["adam", "sgd"], ds=[1, 12.5], rhos=[0.0, 1.5], seeds=0,
                device="tpu", d_max={"qp": 8}, colour="red", solver_settings={"lr": -1.0, "momentum": 0.9},
                search={"curve_span": 2.0, "k": 2})
    with pytest.raises(InvalidInput) as info:
        SweepSpec.from_dict(raw)
    message = str(info.value)
    for name in ["'xp'", "'sgd'", "ds: 1 ", "12.5", "0.0", "1.5", "seeds=0", "'tpu'", "'qp'", "'colour'",
                 "lr=-1.0", "solver_settings.momentum", "curve_span=2.0", "search.k"]:
        assert name in message, name


def test_direct_construction_is_validated_too():
    with pytest.raises(InvalidInput, match="'xp'.*d_max.dp=1|d_max.dp=1.*'xp'"):
        SweepSpec(problems=("xp",), solvers=("adam",), rhos=(1.0,), ds=(8,), seeds=1, d_max={"dp": 1})
    with pytest.raises(InvalidInput, match="solver_settings"):
        SweepSpec(("op",), ("adam",), (1.0,), (8,), 1, solver_settings={"lr": 0.1})
    with pytest.raises(InvalidInput, match="curve_points=-1"):
        SearchSettings(curve_points=-1)


def test_load_spec_layers_preset_file_and_flags(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('preset = "demo"\nseeds = 5\n[solver_settings]\nlr = 0.2\n')
    spec = load_spec(str(path), overrides={"d": [8], "steps": 300, "rho": None, "curve_points": 0,
                                           "problems": None})
    demo = preset_spec("demo")
    assert spec.seeds == 5 and spec.ds == (8,) and spec.rhos == demo.rhos and spec.problems == demo.problems
    assert spec.solver_settings == SolverSettings(lr=0.2, max_steps=300)
    assert spec.search.curve_points == 0
    with pytest.raises(InvalidInput, match="'paper'.*'demo'"):
        load_spec(str(path), preset="paper")


def test_load_spec_from_flags_alone_and_bad_sources(tmp_path):
    spec = load_spec(overrides={"problems": ["op"], "solvers": ["lp"], "rho": [1], "d": [8, 10], "seeds": 2})
    assert [c.d for c in spec.cells()] == [8, 10] and spec.cells()[0].solver == "lp"
    with pytest.raises(InvalidInput, match="'nope'"):
        load_spec(preset="nope")
    with pytest.raises(InvalidInput, match="missing.toml"):
        load_spec(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("problems = [op\n")
    with pytest.raises(InvalidInput, match="bad.toml"):
        load_spec(str(bad))


def test_additions_to_accepts_only_specs_that_add_cells():
    stored = SweepSpec.from_dict(small(search={"curve_points": 0}))
    grow = lambda **c: SweepSpec.from_dict(small(**{"search": {"curve_points": 0}, **c}))  # noqa: E731
    assert stored.additions_to(stored) == []
    assert grow(ds=[12, 8]).additions_to(stored) == []
    assert grow(ds=[8, 12, 128]).additions_to(stored) == ["ds + [128]"]
    assert grow(problems=["op", "dp"], solvers=["adam", "hebbian", "lp"], seeds=4, d_max={"lp": 12}) \
        .additions_to(stored) is None  # d_max changed: the stored cells' caps are not this spec's
    assert grow(solvers=["hebbian", "adam", "lp"], seeds=4, rhos=[0.5, 1.0, 0.25]).additions_to(stored) == [
        "solvers + ['lp']", "rhos + [0.25]", "seeds 2 -> 4"]
    not_extensions = {
        "fewer ds": grow(ds=[8]),
        "ds replaced": grow(ds=[8, 16]),
        "fewer seeds": grow(seeds=1),
        "other max_steps": grow(ds=[8, 12, 16], solver_settings={"max_steps": 501}),
        "other resolution": grow(ds=[8, 12, 16], search={"curve_points": 0, "resolution": 0.05}),
    }
    for name, spec in not_extensions.items():
        assert spec.additions_to(stored) is None, name
    with_curves = SweepSpec.from_dict(small())  # curve loads follow each cell's median over its seeds
    assert SweepSpec.from_dict(small(seeds=3)).additions_to(with_curves) is None
    assert SweepSpec.from_dict(small(ds=[8, 12, 16])).additions_to(with_curves) == ["ds + [16]"]
    from tests.orchestrator.learners.test_expansion import make_spec as adaptive_spec

    adaptive = adaptive_spec("rho", ds=(8, 16))  # its decisions read every cell: resume only
    assert adaptive.additions_to(adaptive) == []
    assert adaptive_spec("rho", ds=(8, 16, 24)).additions_to(adaptive) is None
    plain = dataclasses.replace(adaptive, adaptive=type(adaptive.adaptive)(), rhos=(1.0, 0.5))
    assert adaptive.additions_to(plain) is None and plain.additions_to(adaptive) is None


def test_preset_dict_is_a_copy():
    preset_dict("demo")["ds"].append(99)
    assert 99 not in PRESETS["demo"]["ds"]


def test_compatible_with():
    spec = SweepSpec.from_dict(small())
    assert spec.compatible_with(spec) == []
    reordered = SweepSpec.from_dict(small(ds=[12, 8], problems=["dp", "op"]))
    assert spec.compatible_with(reordered) == []
    sharded = dataclasses.replace(spec, shards={"dp": {"d_min": 8, "k": 2}})
    assert spec.compatible_with(sharded) == []  # how many devices run a probe does not change its verdict
    cases = {
        "ds": SweepSpec.from_dict(small(ds=[8, 12, 16])),
        "solver_settings": SweepSpec.from_dict(small(solver_settings={"max_steps": 501})),
        "seeds": SweepSpec.from_dict(small(seeds=3)),
        "solvers": SweepSpec.from_dict(small(solvers=["adam"])),
        "d_max": SweepSpec.from_dict(small(d_max={"dp": 8})),
        "device": SweepSpec.from_dict(small(device="cpu")),
        "search.curve_points": SweepSpec.from_dict(small(search={"curve_points": 5})),
        "search.resolution": SweepSpec.from_dict(small(search={"curve_points": 2, "resolution": 0.01})),
        "search.width": SweepSpec.from_dict(small(search={"curve_points": 2, "width": 3})),
    }
    for name, other in cases.items():
        reasons = spec.compatible_with(other)
        assert len(reasons) == 1 and reasons[0].startswith(f"{name} differ"), (name, reasons)
        assert other.compatible_with(spec)


# ---- per-cell seeds and resolutions ---------------------------------------------------------------------
def test_seeds_for_caps_the_cells_its_keys_select_and_resolution_for_takes_the_first_match():
    spec = SweepSpec.from_dict(small(solvers=["adam", "lp"], rhos=[1.0], ds=[8, 12, 16], seeds=6,
                                     seeds_for={"lp,d>=12": 2, "dp": 4, "d=16": 3},
                                     resolution_for={"lp": 0.0, "d>=12": 0.1}, search={"resolution": 0.02}))
    seeds = {(c.problem, c.solver, c.d): spec.seeds_of(c) for c in spec.cells()}
    assert seeds[("op", "adam", 8)] == 6 and seeds[("dp", "adam", 8)] == 4 and seeds[("op", "lp", 8)] == 6
    assert seeds[("op", "lp", 12)] == 2 and seeds[("dp", "lp", 16)] == 2 and seeds[("op", "adam", 16)] == 3
    res = {(c.problem, c.solver, c.d): spec.resolution_of(c) for c in spec.cells()}
    assert res[("op", "lp", 16)] == 0.0 and res[("op", "adam", 16)] == 0.1 and res[("dp", "adam", 8)] == 0.02
    assert SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert load_spec_from_text(to_toml(spec)) == spec


def load_spec_from_text(text: str) -> SweepSpec:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as fh:
        fh.write(text)
    return load_spec(fh.name)


@pytest.mark.parametrize("table, named", [
    ({"seeds_for": {"lpx": 2}}, "'lpx' names no problem"), ({"seeds_for": {"lp": 9}}, "seeds_for.'lp'=9"),
    ({"seeds_for": {"d>=x": 2}}, "'d>=x': d>=D needs an integer"), ({"seeds_for": {"rho=2": 1}}, "'rho=2': R"),
    ({"resolution_for": {"dp": 0.7}}, "resolution_for.'dp'=0.7"), ({"seeds_for": {"": 1}}, "must name labels")])
def test_bad_selector_tables_are_named(table, named):
    with pytest.raises(InvalidInput, match=re.escape(named)):
        SweepSpec.from_dict(small(**table))


def test_selector_tables_must_agree_for_a_store_to_be_shared():
    spec = SweepSpec.from_dict(small(seeds_for={"dp": 1}))
    assert any(r.startswith("seeds_for differ") for r in spec.compatible_with(SweepSpec.from_dict(small())))
    other = SweepSpec.from_dict(small(resolution_for={"op": 0.1}))
    assert any(r.startswith("resolution_for differ") for r in other.compatible_with(SweepSpec.from_dict(small())))
