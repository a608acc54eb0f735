"""The console's per-device history: appends only new points, follows the current job."""

from __future__ import annotations

from console.state import DeviceState, DeviceView
from console.tui.history import HistoryBook


def _view(points: list[tuple[float, float]], job: str | None = None,
          elapsed: float | None = None) -> DeviceView:
    return DeviceView("h", "d", None, "n", None, DeviceState.RUNNING if job else DeviceState.IDLE,
                      history=tuple(points), job_id=job, job_elapsed_s=elapsed,
                      last_sample_wall=points[-1][0] if points else None,
                      rail_history=tuple((t, {"gpu": w / 2, "cpu": None if t == 2.0 else 1.0})
                                         for t, w in points))


def test_overlapping_snapshots_append_each_point_once() -> None:
    book = HistoryBook()
    book.ingest([_view([(1.0, 10.0), (2.0, 11.0)])])
    book.ingest([_view([(1.0, 10.0), (2.0, 11.0), (3.0, 12.0)])])
    t, w = book.get("h/d").total()
    assert t.tolist() == [1.0, 2.0, 3.0]
    assert w.tolist() == [10.0, 11.0, 12.0]


def test_an_unchanged_snapshot_does_not_bump_the_version() -> None:
    book = HistoryBook()
    book.ingest([_view([(1.0, 10.0)])])
    before = book.get("h/d").version
    book.ingest([_view([(1.0, 10.0)])])
    assert book.get("h/d").version == before


def test_job_series_starts_at_the_job_start() -> None:
    book = HistoryBook()
    book.ingest([_view([(1.0, 10.0), (2.0, 11.0)])])
    book.ingest([_view([(2.0, 11.0), (3.0, 30.0), (4.0, 31.0)], job="j1", elapsed=1.0)])
    t, w = book.get("h/d").job_series()
    assert t.tolist() == [0.0, 1.0]
    assert w.tolist() == [30.0, 31.0]


def test_every_rail_sample_is_kept_at_its_own_time_once() -> None:
    book = HistoryBook()
    book.ingest([_view([(1.0, 10.0)])])
    book.ingest([_view([(1.0, 10.0), (1.5, 30.0), (2.0, 12.0)])])  # two samples between ticks
    t, w = book.get("h/d").rail("gpu")
    assert t.tolist() == [1.0, 1.5, 2.0] and w.tolist() == [5.0, 15.0, 6.0]
    t, w = book.get("h/d").rail("cpu")  # a rail without a value at 2.0 has a gap there, not a zero
    assert t.tolist() == [1.0, 1.5] and w.tolist() == [1.0, 1.0]
