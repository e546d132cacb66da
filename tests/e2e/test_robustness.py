"""The short versions of bench/robustness.py's checks (the README runs the long ones): malformed requests
and bombs never make a 5xx or a crash, overload is answered with 429 and Retry-After, and Read operations
accepted before a kill -9 are all read after the restart."""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import robustness  # noqa: E402


def test_seeded_fuzz_makes_no_5xx_and_no_crash():
    assert robustness.fuzz(argparse.Namespace(requests=150, seed=11))


def test_overload_is_refused_with_429_and_recovers():
    assert robustness.overload(argparse.Namespace(seconds=8))


def test_read_operations_survive_a_kill_9(tmp_path):
    assert robustness.durability(argparse.Namespace(operations=4), data_dir=str(tmp_path / "data"))
