"""Fusion plans as files: the shipped strategies live in `opgraph/plans/*.toml`; a user's plan is a
.toml or .json file with the same structure:

    name = "my-plan"
    description = "what it models"

    [[rule]]                      # fuse along every edge that matches (all keys optional but name)
    name = "a norm fuses into the matmuls that consume it"
    producer = ["norm"]           # op kinds or functions; omitted = any op
    consumer = ["matmul"]
    tensor = ["activation"]       # roles of the tensor on the edge: activation, kv_cache, input, weight
    single_consumer = false       # only when the consumer is the producer's only reader
    single_producer = false       # only when the producer is the consumer's only source
    same_part = false             # only when producer and every reader share a part tag (attention, mlp, ...)
    stacked = false               # only edges at a product with per-expert matrices (the routed experts' GEMMs)
    never = false                 # true: forbid fusing such edges instead
    siblings = false              # true: fuse matching ops side by side (q and k rope in one kernel), see FuseRule
    packed = [["q_proj", "k_proj", "v_proj"]]  # with siblings: weights that run as one GEMM, by leaf name

    [[group]]                     # explicit kernels, by op name
    ops = ["q_proj", "k_proj", "v_proj"]
"""

from __future__ import annotations

from pathlib import Path

from opgraph.files import datafile
from opgraph.errors import OpgraphError, noun
from opgraph.core.fusion import FuseRule, FusionPlan
from opgraph.core import ops
from opgraph.core.tensor import Role

PLANS = Path(__file__).parent / "plans"
DEFAULT = "fused"
_PLAN_KEYS = {"name", "description", "rule", "group"}
_RULE_LISTS = {"producer": lambda: ops.KINDS | ops.FUNCTIONS, "consumer": lambda: ops.KINDS | ops.FUNCTIONS,
               "tensor": lambda: {r.value for r in Role}}  # read when a plan is parsed: user code may register more
_RULE_FLAGS = ("single_consumer", "single_producer", "same_part", "stacked", "never", "siblings")


def names() -> list[str]:
    """The shipped strategies, in order of increasing fusion."""
    order = ["unfused", "flash", "fused", "megakernel"]
    found = sorted(p.stem for p in PLANS.glob("*.toml"))
    return [n for n in order if n in found] + [n for n in found if n not in order]


def load(name_or_path: str) -> FusionPlan:
    """A shipped strategy by name, or a plan file by path."""
    return datafile.named_or_file(name_or_path, names(), PLANS, parse, what="fusion strategy",
                                  file="a .toml/.json plan file")


def _rule(where: str, i: int, raw: object) -> FuseRule:
    if not isinstance(raw, dict):
        raise OpgraphError(f"{where}: rule {i} must be a table")
    label = f"{where}: rule {i} ({raw.get('name', 'unnamed')!r})"
    if not isinstance(raw.get("name"), str):
        raise OpgraphError(f"{label}: needs a 'name' (a string saying what it fuses)")
    unknown = set(raw) - {"name", "packed", *_RULE_LISTS, *_RULE_FLAGS}
    if unknown:
        raise OpgraphError(f"{label}: unknown {noun(len(unknown), 'key')} {', '.join(sorted(unknown))}; "
                           f"valid: name, {', '.join(_RULE_LISTS)}, {', '.join(_RULE_FLAGS)}, packed")
    kwargs = {"name": raw["name"]}
    for key, valid in _RULE_LISTS.items():
        if key in raw:
            value = raw[key]
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                raise OpgraphError(f"{label}: {key} must be a non-empty list of names")
            bad = [v for v in value if v not in valid()]
            if bad:
                raise OpgraphError(f"{label}: {key} has unknown {noun(len(bad), 'name')} {', '.join(bad)}; "
                                   f"valid: {', '.join(sorted(valid()))}")
            kwargs[key] = value
    for key in _RULE_FLAGS:
        if key in raw:
            if not isinstance(raw[key], bool):
                raise OpgraphError(f"{label}: {key} must be true or false")
            kwargs[key] = raw[key]
    if "packed" in raw:
        packed = raw["packed"]
        if not isinstance(packed, list) or not packed or not all(
                isinstance(p, list) and len(p) > 1 and all(isinstance(n, str) for n in p) for p in packed):
            raise OpgraphError(f"{label}: packed must be a list of lists of at least two weight names "
                               f"(e.g. [[\"q_proj\", \"k_proj\", \"v_proj\"]])")
        kwargs["packed"] = packed
    try:
        return FuseRule(**kwargs)
    except OpgraphError as e:
        raise OpgraphError(f"{label}: {e}") from None


def _group(where: str, i: int, raw: object) -> tuple[str, ...]:
    ops = raw.get("ops") if isinstance(raw, dict) else None
    if not isinstance(ops, list) or len(ops) < 2 or not all(isinstance(o, str) for o in ops):
        raise OpgraphError(f"{where}: group {i} needs 'ops', a list of at least two op names")
    unknown = set(raw) - {"name", "ops"}
    if unknown:
        raise OpgraphError(f"{where}: group {i}: unknown {noun(len(unknown), 'key')} {', '.join(sorted(unknown))}; "
                           f"valid: name, ops")
    return tuple(ops)


def parse(path: Path) -> FusionPlan:
    where = str(path)
    data = datafile.read(path, "fusion plan")
    unknown = set(data) - _PLAN_KEYS
    if unknown:
        raise OpgraphError(f"{where}: unknown {noun(len(unknown), 'key')} {', '.join(sorted(unknown))}; "
                           f"valid: {', '.join(sorted(_PLAN_KEYS))}")
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        raise OpgraphError(f"{where}: 'name' must be a string")
    for key in ("rule", "group"):
        if not isinstance(data.get(key, []), list):
            raise OpgraphError(f"{where}: '{key}' must be a list of tables ([[{key}]] in TOML)")
    rules = [_rule(where, i, r) for i, r in enumerate(data.get("rule", []), 1)]
    groups = [_group(where, i, g) for i, g in enumerate(data.get("group", []), 1)]
    description = data.get("description", "")
    if not isinstance(description, str):
        raise OpgraphError(f"{where}: 'description' must be a string, got {type(description).__name__}")
    return FusionPlan(name, rules, groups, description)
