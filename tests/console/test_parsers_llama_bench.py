"""llama-bench in md (old and new labels, depth), csv, json and jsonl, parsed by column name."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.parsers.common import ParseError
from console.parsers.llama_bench import parse_csv, parse_json, parse_jsonl, parse_llama_bench, parse_md

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "llama-bench"


def test_md_with_old_spaced_labels_normalises_to_pp512_and_tg128() -> None:
    rows = parse_md((FIX / "readme_output_md.md").read_text())
    assert [(r.test, r.n_prompt, r.n_gen, r.avg_ts, r.stddev_ts) for r in rows] == [
        ("pp512", 512, 0, 2368.80, 93.24),
        ("tg128", 0, 128, 131.42, 0.59),
    ]
    assert (
        rows[0].model == "llama 7B mostly Q4_0" and rows[0].backend == "CUDA" and rows[0].n_gpu_layers == 99
    )
    assert rows[0].extra == {"size": "3.56 GiB", "params": "6.74 B"}


def test_md_depth_variant_reads_the_context_depth() -> None:
    rows = parse_md((FIX / "readme_output_md_depth.md").read_text())
    assert [r.test for r in rows] == ["pp512", "tg128", "pp512 @ d512", "tg128 @ d512"]
    assert (rows[3].n_gen, rows[3].n_depth, rows[3].avg_ts, rows[3].stddev_ts) == (128, 512, 116.71, 0.60)


def test_md_jetson_tx2_excerpt_skips_the_command_and_cuda_lines() -> None:
    rows = parse_md((FIX / "jetson-tx2_pr4560_md_excerpt.md").read_text())
    assert len(rows) == 7
    assert [r.n_gpu_layers for r in rows] == [10, 10, 20, 20, 30, 30, 31]
    assert (rows[0].test, rows[0].avg_ts) == ("pp512", 2.97)
    assert (rows[5].test, rows[5].avg_ts, rows[5].stddev_ts) == ("tg128", 1.14, 0.0)


def test_csv_reads_timings_and_keeps_unknown_columns_in_extra() -> None:
    rows = parse_csv((FIX / "readme_output.csv").read_text())
    assert [(r.test, r.avg_ts, r.stddev_ts, r.avg_ns) for r in rows] == [
        ("pp512", 7285.676949, 100.064434, 70285660),
        ("tg128", 119.915244, 0.430617, 1067431600),
    ]
    assert rows[0].model == "qwen2 7B Q4_K - Medium"
    assert (
        rows[0].extra["gpu_info"] == "NVIDIA GeForce RTX 4080" and rows[0].extra["build_commit"] == "8cf427ff"
    )


def test_csv_with_a_newer_extra_column_still_parses() -> None:
    lines = (FIX / "readme_output.csv").read_text().splitlines()
    lines = [lines[0] + ",n_cpu_moe"] + [x + ',"0"' for x in lines[1:]]
    rows = parse_csv("\n".join(lines))
    assert rows[1].avg_ts == 119.915244 and rows[1].extra["n_cpu_moe"] == 0


def test_json_reads_samples_per_repetition() -> None:
    rows = parse_json((FIX / "readme_output.json").read_text())
    assert (rows[0].test, rows[0].avg_ts, rows[0].stddev_ns) == ("pp512", 7100.002165, 1453752)
    assert rows[1].samples_ts == [119.03, 120.178, 119.43, 118.307, 117.464]


def test_jsonl_reads_one_result_per_line() -> None:
    rows = parse_jsonl((FIX / "readme_output.jsonl").read_text())
    assert [(r.test, r.avg_ts) for r in rows] == [("pp512", 7263.609157), ("tg128", 119.844681)]


@pytest.mark.parametrize(
    "name",
    [
        "readme_output_md.md",
        "readme_output.csv",
        "readme_output.json",
        "readme_output.jsonl",
        "readme_output_md_depth.md",
        "jetson-tx2_pr4560_md_excerpt.md",
    ],
)
def test_auto_parser_handles_every_output_format(name: str) -> None:
    rows = parse_llama_bench((FIX / name).read_text())
    assert rows and all(r.avg_ts > 0 for r in rows)


def test_md_row_with_a_missing_cell_names_the_line() -> None:
    lines = (FIX / "readme_output_md.md").read_text().splitlines()
    lines[3] = lines[3].rsplit("|", 2)[0] + "|"
    with pytest.raises(ParseError) as err:
        parse_md("\n".join(lines))
    assert err.value.line == 4 and "llama-bench" in str(err.value)


def test_jsonl_with_a_broken_line_names_it() -> None:
    lines = (FIX / "readme_output.jsonl").read_text().splitlines()
    with pytest.raises(ParseError) as err:
        parse_jsonl(lines[0] + "\n" + lines[1][:50])
    assert err.value.line == 2


def test_md_with_a_bad_test_label_names_the_line() -> None:
    text = (FIX / "readme_output_md.md").read_text().replace("tg 128", "xx 128")
    with pytest.raises(ParseError) as err:
        parse_md(text)
    assert err.value.line == 4
