"""profiles/*.toml load into typed data, shipped numbers have sources, bad files name file, key, line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from console import profiles
from console.errors import ProfileError, UsageError

BAD = Path(__file__).resolve().parent.parent / "data" / "profiles_bad"

# The devices issue #3 requires, by id.
REQUIRED_DEVICES = [
    "jetson-agx-xavier-16gb", "jetson-agx-xavier-32gb", "jetson-agx-orin-32gb", "jetson-agx-orin-64gb",
    "jetson-orin-nx-16gb", "jetson-orin-nano-8gb", "jetson-nano", "a100-pcie-40gb", "a100-sxm4-40gb",
    "a100-pcie-80gb", "a100-sxm4-80gb", "h100-pcie-80gb", "h100-sxm5-80gb", "h200-sxm-141gb", "l40s", "l40",
    "a40", "rtx-a5000", "rtx-6000-ada", "quadro-rtx-6000", "quadro-rtx-8000", "v100-pcie-16gb", "t4",
    "p100-pcie-16gb", "gtx-1080-ti", "rtx-2080-ti", "rtx-4090",
]


def test_packaged_hardware_has_every_required_device() -> None:
    devices = profiles.load_hardware()
    assert set(REQUIRED_DEVICES) <= set(devices)


def test_every_shipped_number_has_a_source() -> None:
    for hw in profiles.load_hardware().values():
        for name in profiles.HW_NUMERIC:
            if getattr(hw, name) is not None:
                assert hw.sources.get(name), f"{hw.id}.{name} has no source"
        for name in hw.estimates:
            assert hw.sources.get(name + "_estimate"), f"{hw.id}.{name}_estimate has no source"
            assert hw.estimate_basis.get(name), f"{hw.id}.{name}_estimate has no basis"


def test_orin_die_area_is_unknown_with_the_documented_estimate() -> None:
    orin = profiles.get_device("jetson-agx-orin-64gb")
    assert orin.die_mm2 is None  # NVIDIA has not published it (lca-data.md §1)
    assert orin.number("die_mm2") == (377.0, True)
    assert "17.0 B transistors" in orin.estimate_basis["die_mm2"]


def test_study_devices_carry_the_study_values() -> None:
    xavier = profiles.get_device("jetson-agx-xavier-32gb")
    a100 = profiles.get_device("a100-sxm4-40gb")
    assert (xavier.die_mm2, xavier.node_nm, xavier.memory_gb, xavier.memory_type) == (350, 12, 32, "LPDDR4X")
    assert (xavier.fp32_tflops, xavier.tdp_w, xavier.category) == (1.41, 30, "edge")
    assert (a100.die_mm2, a100.node_nm, a100.memory_gb, a100.memory_type) == (826, 7, 40, "HBM2")
    assert (a100.fp32_tflops, a100.tdp_w, a100.category) == (19.5, 400, "datacenter")


def test_every_device_node_and_memory_has_embodied_factors() -> None:
    embodied = profiles.load_embodied()
    for hw in profiles.load_hardware().values():
        if hw.node_nm is not None and hw.foundry is not None:
            assert embodied.proc_for(hw.node_nm, hw.foundry) is not None, hw.id
        if hw.memory_type is not None:
            factor = embodied.mem_for(hw.memory_type)
            assert factor is not None and factor.g_per_gb is not None, hw.id


def test_study_memory_factors_match_the_study() -> None:
    embodied = profiles.load_embodied()
    expected = {"HBM2": 280, "HBM2e": 280, "GDDR5": 360, "GDDR5X": 360, "GDDR6": 360, "LPDDR4X": 290,
                "LPDDR5": 290}
    for mtype, g_per_gb in expected.items():
        factor = embodied.mem_for(mtype)
        assert factor is not None and factor.g_per_gb == g_per_gb and not factor.estimate
    assert embodied.mem_for("HBM3e").estimate  # borrowed from HBM2e: results must say "estimated"
    assert embodied.lifetime_years_default == 7.0
    assert embodied.pue_by_category["datacenter"] == 1.5 and embodied.pue_by_category["edge"] == 1.0


def test_unknown_device_lists_close_matches() -> None:
    with pytest.raises(UsageError) as info:
        profiles.get_device("a100")
    message = str(info.value)
    assert "unknown device 'a100'" in message
    assert "a100-sxm4-40gb" in message and "a100-pcie-80gb" in message
    assert info.value.exit_code == 2


def test_device_lookup_ignores_case() -> None:
    assert profiles.get_device("A100-SXM4-40GB").id == "a100-sxm4-40gb"


def test_fr_ademe_grid_is_the_studys_79_1() -> None:
    grid = profiles.get_grid("FR-ademe")
    assert grid.g_per_kwh == 79.1 and grid.region == "FR"
    assert grid.low <= grid.g_per_kwh <= grid.high


def test_region_code_means_its_latest_year() -> None:
    assert profiles.get_grid("DE").id == "DE-2024"
    assert profiles.get_grid("de-2023").g_per_kwh == 381.0


def test_grid_of_a_region_with_adp_pe_carries_them() -> None:
    grid = profiles.get_grid("FR-ademe")
    assert grid.adp_kgsb_per_kwh == 4.858e-8 and grid.pe_mj_per_kwh == 11.289
    assert profiles.get_grid("NO").adp_kgsb_per_kwh is None  # not in lca-data.md §5: left unknown


def test_unknown_grid_lists_close_matches() -> None:
    with pytest.raises(UsageError) as info:
        profiles.get_grid("FR-ADEM")
    assert "FR-ademe" in str(info.value)


def _defect_line(path: Path) -> int:
    """The line each bad file marks with '# <- defect'."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if "# <- defect" in line:
            return number
    raise AssertionError(f"{path} has no '# <- defect' marker")


BAD_CASES = [
    ("hardware_syntax_error.toml", profiles.load_hardware, None, "syntax"),
    ("hardware_negative_tdp.toml", profiles.load_hardware, "a100-sxm4-40gb.tdp_w", "> 0"),
    ("hardware_text_for_number.toml", profiles.load_hardware, "a100-sxm4-40gb.fp32_tflops",
     "must be a number"),
    ("hardware_missing_source.toml", profiles.load_hardware, "a100-sxm4-40gb.fp32_tflops", "no source"),
    ("hardware_unknown_key.toml", profiles.load_hardware, "a100-sxm4-40gb.tdp_watts", "tdp_w"),
    ("hardware_bad_category.toml", profiles.load_hardware, "a100-sxm4-40gb.category", "datacenter"),
    ("hardware_estimate_without_basis.toml", profiles.load_hardware, "jetson-agx-orin-32gb.die_mm2_estimate",
     "no basis"),
    ("grids_low_above_value.toml", profiles.load_grids, "grid.FR-ademe.low", "low <= value"),
    ("grids_text_for_number.toml", profiles.load_grids, "grid.DE-2024.g_per_kwh", "must be a number"),
    ("embodied_misnamed_proc.toml", profiles.load_embodied, "proc.tsmc-7", "proc.tsmc-5"),
    ("embodied_pue_below_one.toml", profiles.load_embodied, "pue_by_category.datacenter", ">= 1.0"),
]


@pytest.mark.parametrize(("name", "loader", "key", "words"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_profile_reports_file_key_and_line(name, loader, key, words) -> None:
    path = BAD / name
    with pytest.raises(ProfileError) as info:
        loader(path)
    err = info.value
    assert err.path == str(path)
    assert err.key == key
    assert err.line == _defect_line(path)
    assert words in str(err)
    assert f"{path}:{err.line}" in str(err)  # the rendered message names file:line
    assert err.exit_code == 2


def test_missing_profile_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        profiles.load_grids(tmp_path / "nope.toml")
    assert "nope.toml" in str(info.value) and "not found" in str(info.value)


def test_loads_are_cached_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "grids.toml"
    path.write_text('[grid.X-2020]\nregion = "X"\nyear = 2020\ng_per_kwh = 100.0\nsource = "test"\n')
    first = profiles.load_grids(path)
    assert profiles.load_grids(path)["X-2020"] is first["X-2020"]  # same parsed object: cached
    path.write_text('[grid.X-2020]\nregion = "X"\nyear = 2020\ng_per_kwh = 200.0\nsource = "test"\n')
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # coarse-mtime filesystems
    assert profiles.load_grids(path)["X-2020"].g_per_kwh == 200.0


def test_find_line_points_at_the_key_inside_its_table() -> None:
    text = "[a]\nx = 1\n\n[b]\ny = 2\nx = 3\n"
    assert profiles.find_line(text, "b", "x") == 6
    assert profiles.find_line(text, "a", "x") == 2
    assert profiles.find_line(text, "b", None) == 4
    assert profiles.find_line(text, "c", "x") is None
