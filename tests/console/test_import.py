"""`wattlab import`: existing results (+ power logs) become run directories that load like measured runs."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import typer

from console import cli
from console.commands import importcmd
from console.importer import ImportOptions, import_run
from console.metrics import ImpactContext, integrate_trapezoid
from console.store import load_run

FIX = Path(__file__).resolve().parent.parent / "fixtures"
GEN = FIX / "mlperf" / "generated_loadgen_6.0.17"
THESIS_CSV = FIX / "power" / "thesis-fork_nvidia-smi_gpu_idle.csv"
# power_begin / power_end of the 6.0.17 SingleStream detail log (UTC)
BEGIN = datetime(2026, 11, 24, 9, 22, 43, 855000)
END = datetime(2026, 11, 24, 9, 22, 45, 220000)
FR = ImpactContext(grid_g_per_kwh=79.1, grid_region="FR-ademe", pue=1.0)


@pytest.fixture()
def mlperf_run(tmp_path: Path) -> Path:
    """An MLPerf run directory as LoadGen leaves it (summary + detail of the same 6.0.17 run)."""
    run = tmp_path / "run_1"
    run.mkdir()
    shutil.copy(GEN / "synthetic_singlestream_256q_summary.txt", run / "mlperf_log_summary.txt")
    shutil.copy(GEN / "synthetic_singlestream_256q_detail.txt", run / "mlperf_log_detail.txt")
    return run


def smi_csv(path: Path, start: datetime, n: int, step_s: float, watts: float) -> Path:
    """An nvidia-smi --query-gpu=timestamp,index,power.draw --format=csv log at constant power."""
    lines = ["timestamp, index, power.draw [W]"]
    for i in range(n):
        t = start + timedelta(seconds=i * step_s)
        lines.append(f"{t:%Y/%m/%d %H:%M:%S.}{t.microsecond // 1000:03d}, 0, {watts:.2f} W")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    """console.cli's app with only `import` registered; main() uses it."""
    fresh = typer.Typer(name="wattlab", add_completion=False, pretty_exceptions_enable=False)
    fresh.callback(invoke_without_command=True)(lambda: None)
    importcmd.register(fresh)
    monkeypatch.setattr(cli, "app", fresh)
    monkeypatch.setattr(cli, "_register_all", lambda: None)
    return fresh


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_cli_import_of_mlperf_summary_and_nvidia_smi_csv_writes_a_loadable_run(
    app: typer.Typer, mlperf_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    power = smi_csv(tmp_path / "smi.csv", BEGIN - timedelta(seconds=1), 40, 0.1, 30.0)
    code, out, err = run_main(
        [
            "import",
            str(mlperf_run / "mlperf_log_summary.txt"),
            "--power",
            str(power),
            "--device",
            "jetson-agx-orin-64gb",
            "--grid",
            "FR-ademe",
            "--logs",
            str(tmp_path / "logs"),
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    doc = json.loads(out)
    run = load_run(doc["run_dir"])
    assert run.complete and run.meta["imported"] is True
    assert run.meta["format"] == "mlperf_summary" and run.meta["power_format"] == "nvidia_smi_csv"
    assert run.meta["source"] == {
        "summary": str(mlperf_run / "mlperf_log_summary.txt"),
        "detail": str(mlperf_run / "mlperf_log_detail.txt"),
        "power": str(power),
    }
    assert run.meta["hardware_id"] == "jetson-agx-orin-64gb" and run.meta["grid"] == "FR-ademe"
    assert run.meta["host"] == "jetson-agx-orin-64gb"  # no --host: reports group it by device
    s = run.summary
    assert s["queries"] == 256
    assert s["latency_ms"]["p90"] == pytest.approx(5.362266) and s["latency_ms"]["max"] == pytest.approx(
        5.529983
    )
    # samples at 09:22:43.855 + k*0.1 s inside the window: 43.855 .. 45.155 -> 14 samples, 1.3 s at 30 W
    total = run.total()
    assert len(total) == 14 and total["t"].iloc[0] == pytest.approx(0.0)
    assert s["energy_j"] == pytest.approx(30.0 * 1.3, rel=1e-6)
    assert s["duration_s"] == pytest.approx(1.365)
    assert s["energy_per_query_j"] == pytest.approx(30.0 * 1.3 / 256, rel=1e-6)
    assert s["gwp_g"]["total"] > s["gwp_g"]["operational"] > 0  # embodied share of the Orin counted
    assert s["gwp_per_query_mg"] == pytest.approx(s["gwp_g"]["total"] * 1000 / 256)
    assert s["valid"] is True and s["qps"] == 187.56


def test_whole_power_log_is_used_when_the_result_has_no_wall_clock(tmp_path: Path) -> None:
    run_dir, s = import_run(
        FIX / "mlperf" / "v3.1_orin_bert-99_singlestream_summary.txt",
        tmp_path,
        ImportOptions(power=THESIS_CSV),
        FR,
    )
    with THESIS_CSV.open() as fh:
        rows = list(csv.DictReader(fh))
    t = [float(r["timestamp"]) for r in rows]
    w = [float(r["gpu_power"]) for r in rows]
    assert s["energy_j"] == pytest.approx(integrate_trapezoid(t, w))
    assert s["duration_s"] == pytest.approx(9.961029529571533)
    assert s["queries"] == 135443  # "Processed at least 64 queries (135443)."
    assert s["gwp_g"]["operational"] == pytest.approx(s["energy_j"] / 3.6e6 * 79.1)
    assert any("whole run" in n for n in s["method"]["import_notes"])
    assert load_run(run_dir).meta["scenario"] == "SingleStream"


def test_spl_power_gets_the_mlperf_checker_average_inside_the_window(
    mlperf_run: Path, tmp_path: Path
) -> None:
    spl = tmp_path / "spl.txt"
    times = [BEGIN + timedelta(seconds=0.25 * i) for i in range(-2, 8)]  # 43.355 .. 45.605
    spl.write_text(
        "".join(
            f"Time,{t:%m-%d-%Y %H:%M:%S}.{t.microsecond // 1000:03d},Watts,{20 + i}.0,Volts,120.0,"
            f"Amps,0.2,PF,0.5,Mark,x_testing\n"
            for i, t in enumerate(times)
        )
    )
    _, s = import_run(mlperf_run, tmp_path / "logs", ImportOptions(power=spl), FR)
    # strictly inside 43.855..45.220: 44.105, 44.355, 44.605, 44.855, 45.105 -> watts 23..27
    assert s["mlperf_power"]["samples"] == 5 and s["mlperf_power"]["avg_watts"] == 25.0
    assert s["mlperf_power"]["energy_mj_per_query"] == pytest.approx(25.0 * 1.365 * 1000 / 256)
    assert s["samples"] == 6  # the trapezoid also keeps the sample exactly at power_begin


def test_power_log_outside_the_benchmark_window_is_refused_with_a_hint(
    app: typer.Typer, mlperf_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    power = smi_csv(tmp_path / "smi.csv", BEGIN + timedelta(hours=2), 20, 0.1, 30.0)  # a UTC+2 clock
    code, _, err = run_main(
        ["import", str(mlperf_run), "--power", str(power), "--logs", str(tmp_path)], capsys
    )
    assert code == 2
    assert f"{power}: power log" in err and "0 sample(s) inside the benchmark window" in err
    assert "--power-offset-s" in err
    code, _, err = run_main(
        [
            "import",
            str(mlperf_run),
            "--power",
            str(power),
            "--power-offset-s",
            "-7200",
            "--logs",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 0, err


def test_malformed_power_log_exits_2_naming_file_and_line(
    app: typer.Typer, mlperf_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    power = smi_csv(tmp_path / "smi.csv", BEGIN, 10, 0.1, 30.0)
    lines = power.read_text().splitlines()
    lines[3] = lines[3].replace("30.00 W", "thirty W")
    power.write_text("\n".join(lines) + "\n")
    code, out, err = run_main(
        ["import", str(mlperf_run), "--power", str(power), "--logs", str(tmp_path)], capsys
    )
    assert code == 2 and out == ""
    assert f"{power}:4: nvidia-smi CSV: power 'thirty W' is not watts" in err
    assert "Traceback" not in err
    assert not (tmp_path / "imported").exists()  # nothing half-written


def test_malformed_summary_exits_2_naming_file_and_line(
    app: typer.Typer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "mlperf_log_summary.txt"
    text = (GEN / "synthetic_singlestream_16q_summary_INVALID.txt").read_text()
    bad.write_text(text.replace("Mean latency (ns)               : 5391361", "Mean latency (ns) : n/a"))
    code, _, err = run_main(["import", str(bad), "--logs", str(tmp_path)], capsys)
    assert code == 2
    line = text.splitlines().index("Mean latency (ns)               : 5391361") + 1
    assert f"{bad}:{line}: MLPerf summary: 'Mean latency (ns)' should be a number" in err


def test_unknown_or_power_only_files_are_not_results(
    app: typer.Typer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    code, _, err = run_main(["import", str(notes), "--logs", str(tmp_path)], capsys)
    assert code == 2 and "unknown file format" in err
    code, _, err = run_main(["import", str(THESIS_CSV), "--logs", str(tmp_path)], capsys)
    assert code == 2 and "a nvidia_smi_csv file cannot be imported as a result" in err


def test_trtexec_import_counts_executions_and_keeps_latency_without_power(tmp_path: Path) -> None:
    run_dir, s = import_run(
        FIX / "trtexec" / "jetson-agx-xavier_trt8.4_perf-summary.txt",
        tmp_path,
        ImportOptions(hardware_id="jetson-agx-xavier"),
        FR,
    )
    assert s["queries"] == round(41087.7 * 3.00119)
    assert s["latency_ms"] == {
        "p50": 0.401947,
        "p99": 0.420288,
        "max": 0.447357,
        "mean": 0.402238,
        "min": 0.387207,
    }
    assert s["energy_j"] is None and s["gwp_g"] is None and s["energy_per_query_j"] is None
    run = load_run(run_dir)
    assert run.complete and run.meta["format"] == "trtexec" and len(run.samples) == 0


def test_llama_bench_json_with_tegrastats_log_gives_energy_per_token(tmp_path: Path) -> None:
    from tests.console.test_parsers_power_logs import NX_JP5

    log = tmp_path / "tegrastats.log"
    log.write_text(NX_JP5)
    _, s = import_run(
        FIX / "llama-bench" / "readme_output.json", tmp_path / "logs", ImportOptions(power=log), FR
    )
    assert s["energy_j"] == pytest.approx(0.5 * (5.542 + 13.353) * 12.0)  # VDD_IN, 12 s apart
    assert s["queries"] == 10 and s["tokens"] == 5 * 512 + 5 * 128
    assert s["energy_per_token_j"] == pytest.approx(s["energy_j"] / 3200)
    assert s["method"]["total_rule"].startswith("VDD_IN")
