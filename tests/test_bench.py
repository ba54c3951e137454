"""brokerlab.bench: the meter, rows and tables of module 05 (pure: no broker)."""

import math
import time

import pytest

from brokerlab import bench


def test_the_warm_up_is_not_counted_and_the_clock_starts_after_it() -> None:
    with bench.Meter("m", total=5, warmup=3, progress=False) as meter:
        for _ in range(meter.planned):
            started = time.perf_counter_ns()
            meter.record(started)
    result = meter.result
    assert meter.planned == 8
    assert result.messages == 5
    assert result.seconds > 0
    assert result.p50_us is not None and result.p50_us >= 1


def test_ticks_count_without_latency() -> None:
    with bench.Meter("t", total=100, progress=False) as meter:
        meter.tick(60)
        meter.tick(40)
    assert meter.result.messages == 100
    assert meter.result.p99_us is None


def test_ratio_and_table_show_times_the_baseline() -> None:
    slow = bench.Result("slow", messages=100, seconds=1.0)
    fast = bench.Result("fast", messages=1000, seconds=1.0)
    missing = bench.Result.missing("tool", "java not found", "PerfTest")
    assert bench.ratio(fast, slow) == pytest.approx(10)
    assert math.isnan(bench.ratio(missing, slow))
    text = repr(bench.table([slow, fast, missing]))
    assert "10.0×" in text and "java not found" in text
    assert "<table>" in bench.table([slow])._repr_html_()


def test_rows_are_kept_for_the_decision_guide(tmp_path, monkeypatch) -> None:
    from brokerlab.settings import Settings
    settings = Settings(state_dir=tmp_path)
    rows = [bench.Result("a", 10, 0.5, 100.0, 200.0, 300.0), bench.Result.missing("b", "no", "x")]
    bench.save("redis", rows, settings)
    loaded = bench.load(settings)
    assert loaded["redis"][0].rate == pytest.approx(20)
    assert loaded["redis"][1].note == "no"


def test_missing_jars_say_how_to_fetch_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BROKERLAB_CACHE_DIR", str(tmp_path))
    with pytest.raises(bench.ToolMissing, match="make brokers"):
        bench.find_jars("perftest")


def test_a_batch_that_crosses_the_warm_up_is_warm_up() -> None:
    # 500 at a time with a warm-up of 200: the first batch holds warm-up records, so it
    # is not counted, and the clock starts at its end.
    with bench.Meter("batches", total=1000, warmup=200, progress=False) as meter:
        for _ in range(3):
            meter.tick(500)
    assert meter.result.messages == 1000
    small = bench.Meter("small", total=100, warmup=10, progress=False)
    for _ in range(7):
        small.tick(30)
    assert small.result.messages == 30 * 6


def test_tag_marks_a_row_and_keeps_what_extra_held() -> None:
    row = bench.Result("r", 10, 1.0, extra={"pipeline": 100})
    tagged = bench.tag(row, "tuned", "produce", measured_in="05.06")
    assert tagged.extra == {"pipeline": 100, "role": "tuned", "side": "produce",
                            "measured_in": "05.06"}
    assert row.extra == {"pipeline": 100} and tagged.rate == row.rate
