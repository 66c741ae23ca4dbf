"""Confidence that means what it says: isotonic calibration of a score against outcomes.

The life-stage engine's raw posterior share assumes independent signals, which they are
not (the same purchase read twice, a sibling's formula and the sibling's articles), so
its raw share overstates certainty. Members with a stated date are a labelled sample:
their behaviour is scored as if the date were unknown and compared with the stated stage.
The observed accuracy per score bin, made non-decreasing by pool-adjacent-violators
(isotonic regression), is the confidence a marketer is shown.

>>> fit_isotonic([(0.3, 10, 3), (0.5, 10, 6), (0.7, 10, 5), (0.9, 10, 9)])
[(0.3, 0.3), (0.5, 0.55), (0.7, 0.55), (0.9, 0.9)]
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def fit_isotonic(bins: list[tuple[float, int, int]]) -> list[tuple[float, float]]:
    """(upper edge, calibrated accuracy) per bin from (upper edge, n, correct), ordered by edge.

    Pool-adjacent-violators: neighbouring bins whose accuracy falls as the score rises are
    merged (weighted by n) until the sequence never falls.
    """
    blocks: list[list[float]] = []  # [n, correct, first index, last index]
    ordered = sorted(b for b in bins if b[1] > 0)
    for i, (_, n, ok) in enumerate(ordered):
        blocks.append([float(n), float(ok), i, i])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][0] > blocks[-1][1] / blocks[-1][0]:
            n2, ok2, _, last = blocks.pop()
            blocks[-1][0] += n2
            blocks[-1][1] += ok2
            blocks[-1][3] = last
    out = []
    for n, ok, first, last in blocks:
        for i in range(int(first), int(last) + 1):
            out.append((ordered[i][0], round(ok / n, 4)))
    return out


def apply_calibration(score: Column, table: list[tuple[float, float]]) -> Column:
    """The calibrated ``score``: the first bin whose upper edge is at least it (null stays null)."""
    if not table:
        return score
    out = F.when(score.isNull(), F.lit(None).cast("double"))
    for edge, value in table:
        out = out.when(score <= F.lit(edge), F.lit(value))
    return out.otherwise(F.lit(table[-1][1]))
