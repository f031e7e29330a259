"""Fixed-width text tables for the terminal (plain Python: no JAX import)."""

from __future__ import annotations

from collections.abc import Sequence

LEFT, RIGHT = "<", ">"


def table_lines(header: Sequence[str], rows: Sequence[Sequence[str]], align: str, *,
                widths: Sequence[int] | None = None, gap: str = "  ", rule: str | None = None) -> list[str]:
    """The header, an optional rule line, then one line per row; trailing blanks are stripped.

    `align` has one character per column: "<" pads on the right, ">" on the left. `widths`
    are the columns' padded widths (a longer cell overflows, as an f-string field would);
    None fits each column to its longest cell, header included. `rule`, a character such
    as "-", underlines the header with a run of it under each column.
    """
    if len(align) != len(header) or set(align) - {LEFT, RIGHT}:
        raise ValueError(f"align={align!r} needs one '<' or '>' per column ({len(header)} columns)")
    if widths is None:
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [_line(header, align, widths, gap)]
    if rule is not None:
        lines.append(_line([rule * width for width in widths], align, widths, gap))
    lines += [_line(row, align, widths, gap) for row in rows]
    return lines


def _line(cells: Sequence[str], align: str, widths: Sequence[int], gap: str) -> str:
    padded = (cell.rjust(width) if side == RIGHT else cell.ljust(width)
              for cell, side, width in zip(cells, align, widths, strict=True))
    return gap.join(padded).rstrip()
