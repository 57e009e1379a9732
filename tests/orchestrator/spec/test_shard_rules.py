"""The spec's [shards] table: parsing, one-line errors, TOML round trip, and the per-probe shard counts."""
from __future__ import annotations

import pytest
import tomllib

from lamcap.errors import InvalidInput
from lamcap.orchestrator.spec import SweepSpec, load_spec, spec_from_layers, to_toml
from lamcap.orchestrator.spec.shard_rules import ShardPlan, ShardRule, ShardRules

BASE = dict(problems=("op", "dp"), solvers=("adam", "lp"), rhos=(1.0,), ds=(8, 16, 32), seeds=2, device="cpu")


def test_a_shards_table_parses_round_trips_and_does_not_change_compatibility():
    spec = SweepSpec(**BASE, shards={"dp": {"d_min": 16, "k": 2}, "op": {"k": "auto", "k_max": 3}})
    assert spec.shards.rules == (ShardRule("dp", 2, 16), ShardRule("op", "auto", 2, 3))
    assert spec.to_dict()["shards"] == {"dp": {"d_min": 16, "k": 2}, "op": {"d_min": 2, "k": "auto", "k_max": 3}}
    assert SweepSpec.from_dict(spec.to_dict()) == spec
    assert spec_from_layers({}, tomllib.loads(to_toml(spec))) == spec
    plain = SweepSpec(**BASE)
    assert "shards" not in plain.to_dict() and "[shards]" not in to_toml(plain)
    assert spec.compatible_with(plain) == []  # a shard count never changes a verdict: resumable either way


def test_flags_and_layers_merge_rules_problem_by_problem():
    spec = load_spec(None, "demo", {"shards": {"dp": {"k": 2}}})
    assert spec.shards.rules == (ShardRule("dp", 2),)


@pytest.mark.parametrize("table,message", [
    ({"dp": {"k": 0}}, "shards.dp.k=0 must be an integer >= 1 or 'auto'"),
    ({"dp": {"k": "many"}}, "shards.dp.k='many' must be an integer >= 1 or 'auto'"),
    ({"dp": {"k": 2, "d_min": 1}}, "shards.dp.d_min=1 must be an integer >= 2"),
    ({"dp": {"k": 2, "k_max": 4}}, "shards.dp.k_max applies to k = 'auto' only"),
    ({"dp": {"k": "auto", "k_max": 0}}, "shards.dp.k_max=0 must be an integer >= 1"),
    ({"dp": {"d_min": 64}}, "shards.dp needs k"),
    ({"dp": {"k": 2, "kk": 1}}, "unknown key shards.dp.kk"),
    ({"xp": {"k": 2}}, "shards: unknown problem 'xp'"),
    ({"dp": 8}, "shards.dp=8 must be a table like"),
    ([1], "shards=[1] must be a table"),
])
def test_bad_rules_are_refused_in_one_line_naming_the_value(table, message):
    with pytest.raises(InvalidInput, match="invalid sweep spec: .*" + message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")) as err:
        SweepSpec.from_dict({**SweepSpec(**BASE).to_dict(), "shards": table})
    assert "\n" not in str(err.value)


def test_rules_cover_their_problem_from_d_min_and_never_lp():
    rules = ShardRules((ShardRule("dp", 4, 16),))
    assert rules.rule_for("dp", 16, "adam") == ShardRule("dp", 4, 16) == rules.rule_for("dp", 32, "hebbian")
    assert rules.rule_for("dp", 8, "adam") is None and rules.rule_for("op", 32, "adam") is None
    assert rules.rule_for("dp", 32, "lp") is None  # lp runs on one device
    assert rules.gang_width(10) == 4 and ShardRules().gang_width(10) == 1
    assert ShardRules((ShardRule("op", "auto"),)).gang_width(6) == 6  # auto's k_max: 8, at most the pool
    assert ShardRules((ShardRule("op", "auto"),)).gang_width(64) == 8
    assert ShardRules((ShardRule("op", "auto", 2, 3), ShardRule("dp", 2))).gang_width(6) == 3


def test_a_plan_gives_each_probe_its_count_capped_at_p_and_auto_by_memory():
    plan = ShardPlan(ShardRules((ShardRule("dp", 4, 16), ShardRule("op", 3))), width=4)
    assert plan.shards("dp", 16, "adam", 100) == 4 and plan.shards("dp", 16, "adam", 3) == 3
    assert plan.shards("dp", 8, "adam", 100) == 1 and plan.shards("op", 8, "lp", 100) == 1
    assert plan.most("dp", 32, "adam") == 4 and plan.most("dp", 8, "adam") == 1
    row = 90 * 16 * 4  # one row of DP competitors at p = 90, d = 16, float32
    auto = ShardPlan(ShardRules((ShardRule("dp", "auto", 16),)), width=8, memory_budget_bytes=30 * row)
    assert auto.shards("dp", 16, "adam", 90) == 3  # ceil(90 / 3) = 30 rows fit
    assert auto.shards("dp", 16, "adam", 20) == 1  # a small probe fits one device
    assert auto.most("dp", 16, "adam") == 8


def test_the_example_file_documents_the_shards_table():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "examples" / "sweep.toml").read_text()
    block = re.search(r"^# \[shards\].*?(?=^\s*$)", text, re.S | re.M).group(0)
    table = tomllib.loads("\n".join(line[2:].split("  #")[0] for line in block.splitlines()
                                    if re.match(r"# (\[shards\]|\w+ = )", line)))  # its lines, uncommented
    raw = tomllib.loads(text)
    raw["shards"] = table["shards"]
    assert SweepSpec.from_dict(raw).shards.rules == (ShardRule("dp", 8, 128), ShardRule("op", "auto", 256, 4))
