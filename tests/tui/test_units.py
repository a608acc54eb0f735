"""Number formatting: one unit per quantity, switching scale at fixed thresholds."""

from __future__ import annotations

from console.state import DeviceState, DeviceView, GwpView
from console.tui import units


def test_energy_is_in_joules_below_one_watt_hour_and_in_wh_above() -> None:
    assert units.energy(0.456) == "456 mJ"
    assert units.energy(12.34) == "12.3 J"
    assert units.energy(3599.0) == "3599 J"
    assert units.energy(7200.0) == "2.00 Wh"


def test_gwp_switches_from_micrograms_to_milligrams_to_grams() -> None:
    assert units.grams(7.3e-6) == "7.3 µg"
    assert units.grams(0.0042) == "4.20 mg"
    assert units.grams(2.5) == "2.50 g"


def test_gwp_interval_writes_bounds_in_the_unit_of_the_total() -> None:
    assert units.gwp_interval(GwpView(total_g=0.0122, low_g=0.0097, high_g=0.0152)) == "12.2 mg [9.7–15.2]"


def test_missing_numbers_show_a_dash() -> None:
    assert units.watts(None) == units.DASH
    assert units.millis(float("nan")) == units.DASH


def test_reconnecting_state_shows_its_countdown() -> None:
    view = DeviceView("h", "d", None, "n", None, DeviceState.RECONNECTING, reconnect_in_s=3.2)
    assert units.state_label(view) == "reconnecting 4s"
    view = DeviceView("h", "d", None, "n", None, DeviceState.RECONNECTING, reconnect_in_s=3.2, attempt=2)
    assert units.state_label(view) == "reconnecting 4s #2"


def test_the_links_own_wording_and_the_message_make_the_detail_line() -> None:
    view = DeviceView("h", "d", None, "n", None, DeviceState.STALLED, stalled_for_s=12.0,
                      link_status="stalled: no data for 12 s (last sample 10:02:03 UTC)",
                      message="spool lagged")
    assert units.detail_line(view) == "stalled: no data for 12 s (last sample 10:02:03 UTC)  ·  spool lagged"
    assert units.detail_line(DeviceView("h", "d", None, "n", None, DeviceState.IDLE)) == ""
