"""Reports: statistics over repeats, the pivot, Pareto, what-if and every output format."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from console.errors import UsageError
from console.metrics import ImpactContext, RunFacts, summarize_run
from console.report import build_report, render
from console.store import RunWriter


# A toy GWP: 1 g per J of energy + 0.5 g embodied, [0.5x, 2x]; lets the test know every number.
def _toy_gwp(energy_j, duration_s, hw, grid, pue=None, lifetime_years=7.0, embodied=None):
    op = energy_j * 1.0
    emb = 0.5
    return SimpleNamespace(operational=op, embodied=emb, total=op + emb, low=(op + emb) * 0.5,
                           high=(op + emb) * 2.0)


def _write_run(root, campaign, host, watts, queries, latency_ms, repeat, complete=True):
    w = RunWriter(root, campaign, host=host, device="sim")
    n = 11
    samples = [[i, i * 0.1, watts, {"GPU": watts * 0.6}, None] for i in range(n)]
    w.add_samples(samples)
    qrows = [[q, q, q * 0.01, q * 0.01 + latency_ms / 1000.0, True, {}] for q in range(queries)]
    w.add_queries(qrows)
    w.write_meta({"host": host, "hardware_id": "jetson-agx-orin-64gb",
                  "cell": {"id": f"{host}/ss/{queries}/{repeat}", "host": host, "scenario": "singlestream",
                           "params": {"queries": queries}, "repeat": repeat}})
    summary = summarize_run(samples, qrows, RunFacts(sampler="sim", interval_ms=100),
                            ImpactContext(grid_g_per_kwh=79.1, grid_region="FR-ademe", pue=1.0),
                            gwp_fn=_toy_gwp)
    if complete:
        w.finish(summary)
    else:
        w.close()
    return summary


@pytest.fixture
def campaign_dir(tmp_path):
    root = tmp_path / "logs"
    for repeat, watts in enumerate((10.0, 12.0)):
        _write_run(root, "quick", "orin", watts, 16, 5.0 + repeat, repeat)
        _write_run(root, "quick", "orin", watts, 32, 5.0, repeat)
        _write_run(root, "quick", "h100", watts * 30, 16, 1.0, repeat)
    return root / "quick"


def test_cells_are_mean_and_std_over_repeats(campaign_dir):
    rep = build_report(campaign_dir)
    assert len(rep.runs) == 6
    assert len(rep.cells) == 3
    orin16 = rep.cells[(rep.cells.device == "orin") & (rep.cells.queries_param == 16)].iloc[0]
    assert orin16["n"] == 2
    # energy 10 W x 1 s = 10 J and 12 J over 16 queries
    assert orin16["energy_per_query_j_mean"] == pytest.approx((10 / 16 + 12 / 16) / 2)
    assert orin16["energy_per_query_j_std"] == pytest.approx(math.sqrt(2) * (12 / 16 - 10 / 16) / 2)
    assert orin16["lat_p50_ms_mean"] == pytest.approx(5.5)
    # toy gwp per query: (E + 0.5) g / 16 queries, in mg
    expected = ((10.5 / 16) + (12.5 / 16)) / 2 * 1000
    assert orin16["gwp_per_query_mg_mean"] == pytest.approx(expected)
    assert orin16["gwp_per_query_low_mg_mean"] == pytest.approx(expected * 0.5)
    assert orin16["gwp_per_query_high_mg_mean"] == pytest.approx(expected * 2)
    assert orin16["gwp_per_query_operational_mg_mean"] + orin16["gwp_per_query_embodied_mg_mean"] \
        == pytest.approx(expected)


def test_pivot_is_devices_by_query_counts(campaign_dir):
    rep = build_report(campaign_dir)
    assert list(rep.pivot.index) == ["h100", "orin"]
    assert list(rep.pivot.columns) == ["16 queries", "32 queries"]
    assert math.isnan(rep.pivot.loc["h100", "32 queries"])


def test_pareto_keeps_only_unbeaten_cells(campaign_dir):
    rep = build_report(campaign_dir)
    on_front = {(rep.cells.loc[i, "device"], int(rep.cells.loc[i, "queries_param"])) for i in rep.pareto}
    # h100 is fastest; orin/32 has the lowest GWP per query; orin/16 is beaten by orin/32 on both
    assert on_front == {("h100", 16), ("orin", 32)}


def test_what_if_scales_gwp_per_query_to_a_year(campaign_dir):
    rep = build_report(campaign_dir, users=10, queries_per_day=100)
    row = rep.what_if.iloc[0]
    cell = rep.cells.iloc[0]
    assert row["kg_per_year"] == pytest.approx(cell["gwp_per_query_mg_mean"] * 10 * 100 * 365 / 1e6)


def test_markdown_says_how_numbers_were_obtained(campaign_dir):
    text = render(build_report(campaign_dir), "md")
    assert "| orin | singlestream | 16 | 2 | 11 ± 1.4 |" in text
    assert "How these numbers were obtained" in text
    assert "sim" in text and "FR-ademe" in text and "die + memory" in text
    assert "idle_subtraction" in text


def test_csv_html_and_png_render(campaign_dir):
    rep = build_report(campaign_dir)
    csv = render(rep, "csv")
    assert csv.splitlines()[0].startswith("device,scenario,queries_param,n,")
    assert len(csv.splitlines()) == 4
    html = render(rep, "html")
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html
    png = render(rep, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_incomplete_runs_are_skipped_with_a_warning(campaign_dir):
    _write_run(campaign_dir.parent, "quick", "orin", 99.0, 16, 5.0, 2, complete=False)
    rep = build_report(campaign_dir)
    assert len(rep.runs) == 6
    assert any("incomplete" in w for w in rep.warnings)
    assert len(build_report(campaign_dir, include_incomplete=True).runs) == 7


def test_a_directory_without_runs_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="no run directories"):
        build_report(tmp_path)


def test_report_command_prints_markdown_and_writes_png(campaign_dir, tmp_path):
    import typer
    from typer.testing import CliRunner

    from console.commands import report as report_cmd

    app = typer.Typer()
    report_cmd.register(app)

    @app.callback()
    def _root() -> None:  # keep `report` a subcommand
        pass

    runner = CliRunner()
    res = runner.invoke(app, ["report", str(campaign_dir), "--format", "md"])
    assert res.exit_code == 0, res.output
    assert "GWP per query" in res.output
    png = tmp_path / "fig.png"
    res = runner.invoke(app, ["report", str(campaign_dir), "--format", "png", "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(app, ["report", str(campaign_dir), "--format", "pdf"])
    assert res.exit_code != 0
