"""Reading a compiled XLA module's text (`jax.jit(...).lower(...).compile().as_text()`): what a
step holds and moves per call, for the tests of the single-device step and of the mesh step."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

COLLECTIVE_KINDS = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")
_BYTES_PER_ELEMENT = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2,
                      "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8}


def whole_table_instructions(hlo: str, rows: int, dim: int) -> list[str]:
    """Instructions of a compiled module that produce a whole [rows, dim] table other than by
    passing it along (parameter, tuple plumbing, the loop) or scattering rows into it in place."""
    table = re.compile(rf"=\s*f32\[{rows},{dim}\]\{{1,0\}}\s+([\w-]+)\(")
    # Computations (bodies of fusions) whose result is a scatter: "%name (params) -> shape {" ... "}".
    scatter_fusions = {name for name, body in re.findall(r"^%?([\w.-]+) \([^\n]*\{\n(.*?)\n\}", hlo, re.M | re.S)
                       if re.search(r"ROOT [^=]+= f32\[[^\]]+\]\{1,0\} scatter\(", body)}
    found = []
    for line in hlo.splitlines():
        match = table.search(line)
        if match is None or match.group(1) in ("parameter", "get-tuple-element", "scatter", "bitcast"):
            continue
        called = re.search(r"calls=%?([\w.-]+)", line)
        if match.group(1) == "fusion" and called and called.group(1) in scatter_fusions:
            continue
        found.append(line.strip())
    return found


@dataclass(frozen=True)
class Collective:
    """One collective instruction: its kind, the arrays it returns [(dtype, dims)], its text."""

    kind: str
    results: tuple[tuple[str, tuple[int, ...]], ...]
    line: str

    def operand_bytes(self, group_size: int) -> int:
        """The bytes each device puts in: its shard of an all-gather's result, the group's share
        of a reduce-scatter's, the whole result of the others."""
        returned = sum(math.prod(dims) * _BYTES_PER_ELEMENT[dtype] for dtype, dims in self.results)
        if self.kind == "all-gather":
            return returned // group_size
        return returned * group_size if self.kind == "reduce-scatter" else returned


def collectives(hlo: str) -> list[Collective]:
    """Every collective of a compiled module (an async pair counts once, at its start)."""
    instruction = re.compile(rf"=\s*(.*?)\s({'|'.join(COLLECTIVE_KINDS)})(?:-start)?\(")
    found = []
    for line in hlo.splitlines():
        match = instruction.search(line)
        if match:
            results = tuple((dtype, tuple(int(size) for size in dims.split(",") if size))
                            for dtype, dims in re.findall(r"(\w+)\[([\d,]*)\]", match.group(1)))
            found.append(Collective(match.group(2), results, line.strip()))
    return found


def loop_collectives(hlo: str) -> list[list[Collective]]:
    """The collectives of each `while` loop's body in a compiled module (a step's slots run in one):
    what the loop exchanges on every iteration."""
    computations = dict(re.findall(r"^%?([\w.-]+) \([^\n]*\{\n(.*?)\n\}", hlo, re.M | re.S))
    bodies = {body for text in computations.values() for body in re.findall(r"\bwhile\([^\n]*body=%?([\w.-]+)", text)}
    return [collectives(computations[body]) for body in sorted(bodies)]
