"""`fleetcare detect` as a user runs it: a subprocess over CSV files."""

from __future__ import annotations

import csv
import math
import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def detect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fleetcare.cli", "detect", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def series(n: int = 1500, spike: int | None = 1200) -> list[tuple[str, str]]:
    """5-minute rows: a daily wave with noise, and one spike far outside it."""
    rng = random.Random(3)
    start = datetime(2014, 4, 1)
    rows = []
    for i in range(n):
        value = 50 + 20 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 2)
        if i == spike:
            value = 200.0
        rows.append(((start + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S"), f"{value:.3f}"))
    return rows


def write(path: Path, rows, header: str = "timestamp,value") -> Path:
    path.write_text(header + "\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return path


def read(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_one_output_row_per_input_row_scores_and_alarms(tmp_path):
    rows = series()
    out = tmp_path / "out.csv"
    done = detect("--input", str(write(tmp_path / "in.csv", rows)), "--output", str(out))
    assert done.returncode == 0, done.stderr
    result = read(out)
    assert result[0] == ["timestamp", "value", "anomaly_score", "alarm"]
    assert [(r[0], r[1]) for r in result[1:]] == rows
    scores = [float(r[2]) for r in result[1:]]
    alarms = [r[3] for r in result[1:]]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert set(alarms) <= {"0", "1"}
    assert alarms[1200] == "1"  # the spike
    assert alarms.count("1") <= 3
    assert max(scores[:1200]) < scores[1200]


def test_output_is_causal(tmp_path):
    """The first k output rows do not change when the file stops after row k (several files, one run)."""
    rows = series()
    full = write(tmp_path / "full.csv", rows)
    cuts = [250, 1201, 1350]
    inputs = [full] + [write(tmp_path / f"cut{k}.csv", rows[:k]) for k in cuts]
    outputs = [tmp_path / f"out{i}.csv" for i in range(len(inputs))]
    done = detect("--input", *map(str, inputs), "--output", *map(str, outputs))
    assert done.returncode == 0, done.stderr
    whole = read(outputs[0])
    for k, output in zip(cuts, outputs[1:]):
        assert read(output) == whole[:k + 1]


def test_bad_row_exits_2_and_names_the_line(tmp_path):
    rows = series(50, spike=None)
    rows[29] = (rows[29][0], "twelve")  # line 31: the header is line 1
    done = detect("--input", str(write(tmp_path / "bad.csv", rows)), "--output", str(tmp_path / "out.csv"))
    assert done.returncode == 2
    assert "line 31" in done.stderr and "twelve" in done.stderr
    assert not (tmp_path / "out.csv").exists()
    rows = series(50, spike=None)
    rows[9] = ("2014-13-45 00:00:00", "1.0")
    done = detect("--input", str(write(tmp_path / "bad.csv", rows)), "--output", str(tmp_path / "out.csv"))
    assert done.returncode == 2 and "line 11" in done.stderr and "timestamp" in done.stderr
    (tmp_path / "fields.csv").write_text("timestamp,value\n2014-04-01 00:00:00,1,2\n")
    done = detect("--input", str(tmp_path / "fields.csv"), "--output", str(tmp_path / "out.csv"))
    assert done.returncode == 2 and "line 2" in done.stderr


def test_bad_header_missing_file_and_mismatched_outputs_exit_2(tmp_path):
    bad = write(tmp_path / "bad.csv", series(10, spike=None), header="time,val")
    done = detect("--input", str(bad), "--output", str(tmp_path / "out.csv"))
    assert done.returncode == 2 and "header" in done.stderr and "line 1" in done.stderr
    done = detect("--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "out.csv"))
    assert done.returncode == 2 and "nope.csv" in done.stderr and "no such file" in done.stderr
    (tmp_path / "empty.csv").write_text("")
    done = detect("--input", str(tmp_path / "empty.csv"), "--output", str(tmp_path / "out.csv"))
    assert done.returncode == 2 and "empty" in done.stderr
    good = write(tmp_path / "good.csv", series(10, spike=None))
    done = detect("--input", str(good), str(good), "--output", str(tmp_path / "out.csv"))
    assert done.returncode == 2 and "--output" in done.stderr


def test_header_only_file_gives_header_only_output(tmp_path):
    (tmp_path / "in.csv").write_text("timestamp,value\n")
    done = detect("--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv"))
    assert done.returncode == 0, done.stderr
    assert read(tmp_path / "out.csv") == [["timestamp", "value", "anomaly_score", "alarm"]]
