"""NAB score of fleetcare's streaming baseline detector on the NAB subset in shared/nab.

    python bench/nab.py [--nab DIR] [--profile standard] [--keep DIR]

Runs `fleetcare detect` once, as a subprocess (`python -m fleetcare.cli detect --input … --output …`,
one process for every file listed in windows.json), then scores its output with alerting/nab_score.py
twice: the alarm column as it is (the decisions that would open cases), and the best single threshold
over the anomaly_score column across the corpus (how NAB's scoreboard is made). Prints per-file and
per-category figures and the times; the last line is
    nab_alarms=<float> nab_best_threshold=<float>
DIR defaults to ../shared/nab beside the repository (where CI puts shared/).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from alerting import nab_score  # noqa: E402


def read_output(path: Path) -> tuple[list[str], list[float], list[int]]:
    """timestamps, anomaly scores and alarms of one `fleetcare detect` output file."""
    timestamps, scores, alarms = [], [], []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        if next(reader) != ["timestamp", "value", "anomaly_score", "alarm"]:
            raise SystemExit(f"{path}: unexpected header")
        for row in reader:
            timestamps.append(row[0])
            scores.append(float(row[2]))
            alarms.append(int(row[3]))
    return timestamps, scores, alarms


def category_line(label: str, names: list[str], result: nab_score.CorpusScore,
                  profile: nab_score.Profile) -> str:
    files = [result.files[n] for n in names]
    raw = sum(f.raw for f in files)
    windows = sum(f.windows for f in files)
    counted = sum(f.counted for f in files)
    score = f"{nab_score.normalise(raw, windows, counted, profile):6.1f}" if windows else "     -"
    return (f"{label:24s} files={len(names):2d} windows={windows:2d} found={sum(f.detected for f in files):2d} "
            f"false_alarms={sum(f.false_alarms for f in files):3d} raw={raw:7.2f} score={score}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=Path, default=REPO.parent / "shared" / "nab",
                        help="folder with windows.json and data/ (default ../shared/nab)")
    parser.add_argument("--profile", default="standard", choices=sorted(nab_score.PROFILES))
    parser.add_argument("--keep", type=Path, help="keep the detector's output files in this folder")
    args = parser.parse_args(argv)
    profile = nab_score.PROFILES[args.profile]
    started = time.perf_counter()
    labels = json.loads((args.nab / "windows.json").read_text())
    names = sorted(labels)
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.keep or Path(tmp)
        outputs = [out_dir / name.replace("/", "__") for name in names]
        out_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "fleetcare.cli", "detect",
                   "--input", *[str(args.nab / "data" / name) for name in names],
                   "--output", *[str(o) for o in outputs]]
        detect_started = time.perf_counter()
        done = subprocess.run(command, cwd=REPO)
        detect_seconds = time.perf_counter() - detect_started
        if done.returncode != 0:
            print(f"fleetcare detect failed (exit {done.returncode})", file=sys.stderr)
            return 1
        scores, alarms, windows = {}, {}, {}
        rows = 0
        for name, output in zip(names, outputs):
            timestamps, scores[name], alarms[name] = read_output(output)
            windows[name] = nab_score.window_rows(timestamps, labels[name])
            rows += len(timestamps)
    by_alarm = nab_score.score_corpus(alarms, windows, profile)
    by_threshold = nab_score.best_threshold(scores, windows, profile)

    width = max(len(name) for name in names)
    print(f"{'file':{width}s} windows | alarms: found fp    raw | best threshold: found fp    raw")
    for name in names:
        a, b = by_alarm.files[name], by_threshold.files[name]
        print(f"{name:{width}s} {a.windows:7d} | {a.detected:12d} {a.false_alarms:3d} {a.raw:6.2f} "
              f"| {b.detected:20d} {b.false_alarms:3d} {b.raw:6.2f}")
    categories = sorted({name.split("/")[0] for name in names})
    for label, result in (("alarms", by_alarm), (f"best threshold {by_threshold.threshold:.4f}", by_threshold)):
        print(f"-- {label} ({args.profile} profile)")
        for category in categories:
            print(category_line(category, [n for n in names if n.startswith(category + "/")], result, profile))
        print(category_line("all", names, result, profile))
    total = time.perf_counter() - started
    print(f"{len(names)} files, {rows} rows: fleetcare detect {detect_seconds:.2f} s "
          f"(process included), total {total:.2f} s")
    print(f"nab_alarms={by_alarm.score:.2f} nab_best_threshold={by_threshold.score:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
