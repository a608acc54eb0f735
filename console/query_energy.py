"""Energy per query and per phase from a run's power samples and query rows. Pure (numpy only).

Power between two samples is the straight line joining them: the trapezoid rule that gives the
job's energy (agents.energy.trapezoid), so the parts below add up to that energy exactly.

Attribution rule. The sample span is cut at every sample time and every query issue/done time, so
within each piece the set of queries in flight (issued, not yet done) does not change. A piece
with k > 0 queries in flight gives each of them 1/k of its energy (Offline and Server queries
overlap and share the device equally); a piece with none goes to a phase:
  before  from the first sample to the first issue (the idle baseline, set-up)
  gaps    between queries, after the first issue and before the last done (idle gaps, pauses)
  after   from the last done to the last sample (tear-down)
So sum(per_query_j) + before_j + gaps_j + after_j == total_j (up to float rounding).
A query without a done time (it never finished) gets None and its time counts as no-query time;
with fewer than two power readings every query gets None (nothing was measured);
times outside the sampled span carry no energy (nothing was measured there).
With idle_w, per_query_net_j subtracts the idle power over each query's share of each piece.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QueryEnergy:
    """Joules per query (None: never finished) and per phase; total_j is the trapezoid of the samples."""

    per_query_j: list[float | None]
    per_query_net_j: list[float | None] | None
    queries_j: float
    before_j: float
    gaps_j: float
    after_j: float
    total_j: float

    def as_dict(self) -> dict[str, float | None]:
        """The phase totals (not the per-query lists) for a summary."""
        return {"queries_j": self.queries_j, "before_j": self.before_j, "gaps_j": self.gaps_j,
                "after_j": self.after_j, "total_j": self.total_j}


def query_energy(t_s: Sequence[float], watts: Sequence[float | None], issue_t: Sequence[float],
                 done_t: Sequence[float | None], idle_w: float | None = None) -> QueryEnergy:
    """Split the energy of samples (t_s, watts) among queries [issue_t, done_t] by the rule above."""
    t, w = _clean_samples(t_s, watts)
    issues = np.asarray(issue_t, dtype=float)
    dones = np.array([math.nan if d is None else float(d) for d in done_t], dtype=float)
    if issues.shape != dones.shape:
        raise ValueError(f"issue_t has {issues.size} values but done_t has {dones.size}")
    finished = np.isfinite(dones) & np.isfinite(issues)
    if len(t) < 2:  # no power measured (a time-only device): no query's energy is known
        per: list[float | None] = [None] * len(finished)
        return QueryEnergy(per, per if idle_w is not None else None, 0.0, 0.0, 0.0, 0.0, 0.0)

    lo, hi = t[0], t[-1]
    q_issue = np.clip(issues[finished], lo, hi)
    q_done = np.clip(np.maximum(dones[finished], issues[finished]), lo, hi)
    cuts = np.unique(np.concatenate([t, q_issue, q_done]))
    p = np.interp(cuts, t, w)
    dt = np.diff(cuts)
    piece_j = 0.5 * (p[1:] + p[:-1]) * dt
    starts = cuts[:-1]
    # In flight over a piece: issued at or before its start and done after it (pieces never straddle).
    in_flight = (np.searchsorted(np.sort(q_issue), starts, side="right")
                 - np.searchsorted(np.sort(q_done), starts, side="right"))
    busy = in_flight > 0
    share = np.where(busy, piece_j / np.maximum(in_flight, 1), 0.0)
    cum = np.concatenate([[0.0], np.cumsum(share)])
    i0 = np.searchsorted(cuts, q_issue)
    i1 = np.searchsorted(cuts, q_done)
    per_finished = cum[i1] - cum[i0]

    per_net = None
    if idle_w is not None:
        idle_share = np.where(busy, idle_w * dt / np.maximum(in_flight, 1), 0.0)
        cum_idle = np.concatenate([[0.0], np.cumsum(idle_share)])
        per_net = _expand(per_finished - (cum_idle[i1] - cum_idle[i0]), finished)

    idle_piece = np.where(busy, 0.0, piece_j)
    if q_issue.size:
        first, last = q_issue.min(), q_done.max()
        before = float(idle_piece[starts < first].sum())
        after = float(idle_piece[starts >= last].sum())
        gaps = float(idle_piece[(starts >= first) & (starts < last)].sum())
    else:
        before, gaps, after = float(idle_piece.sum()), 0.0, 0.0
    return QueryEnergy(_expand(per_finished, finished), per_net, float(piece_j[busy].sum()),
                       before, gaps, after, float(piece_j.sum()))


def _clean_samples(t_s: Sequence[float], watts: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """Samples with a reading, in time order, one per time (None watts are bridged like the trapezoid)."""
    pairs = sorted((float(t), float(x)) for t, x in zip(t_s, watts, strict=True)
                   if x is not None and math.isfinite(float(x)) and math.isfinite(float(t)))
    t = np.array([p[0] for p in pairs], dtype=float)
    w = np.array([p[1] for p in pairs], dtype=float)
    if t.size > 1:
        keep = np.concatenate([np.diff(t) > 0, [True]])  # the last reading of a time wins, as in trapezoid()
        t, w = t[keep], w[keep]
    return t, w


def _expand(values: np.ndarray, finished: np.ndarray) -> list[float | None]:
    out: list[float | None] = []
    it = iter(values.tolist())
    for f in finished:
        out.append(next(it) if f else None)
    return out
