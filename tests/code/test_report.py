"""Report sections render from the files `make` writes (no browser needed)."""

from emolib import report


def _bench_json():
    single = {"p50_ms": 2.0, "p95_ms": 3.0}
    return {
        "note": "one run, one machine",
        "timestamp": "2026-11-27T00:00:00",
        "machine": {"platform": "linux"},
        "models": {
            "cnn": {
                "input_size": 48,
                "single_image": single,
                "naive_baseline": {"p50_ms": 80.0, "p95_ms": 90.0},
                "speedup_p50": 40.0,
                "batch": {"images_per_s": 2500.0},
                "exports": {
                    "tflite_float32": {
                        "mb": 1.9,
                        "single_image": single,
                        "agreement": 1.0,
                        "target_agreement": 0.995,
                        "pass": True,
                    }
                },
            }
        },
        "targets": {
            "cnn_single_p50_le_5ms": {"pass": True, "value": 2.0, "what": "CNN single-image p50 <= 5 ms"},
            "cnn_batch_ge_2000_ips": {"pass": False, "value": 1500, "what": "CNN batch >= 2000 img/s"},
        },
    }


def test_latency_section_uses_the_bench_schema():
    html = report.latency({"latency": _bench_json()}).data
    assert "naive p50 ms" in html and "tflite_float32" in html
    assert "PASS: CNN single-image p50" in html and "FAIL: CNN batch" in html


def test_latency_section_says_what_to_run_when_missing():
    assert "make bench" in report.latency({"latency": None}).data
