"""How fast the detection engine judges samples: a simulated fleet fed straight into it.

    python bench/engine.py [--devices 24] [--days 8] [--interval 300]

Prints samples judged per second of one core, µs per sample, and the findings; last line
`engine_samples_per_s=<float> us_per_sample=<float>`.
"""

from __future__ import annotations

import argparse
import time

from alerting.engine import DetectionEngine, DeviceContext
from alerting.event_rules import load_event_rules
from alerting.policies import load_policies
from fleetcare import simulate as sim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=24)
    ap.add_argument("--days", type=float, default=8.0)
    ap.add_argument("--interval", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    p = sim.plan(sim.Params(devices=args.devices, days=args.days, seed=args.seed, interval=args.interval,
                            start=1.7e9, fault_rate=0.7))
    series = list(sim.generate(p))  # generated first: only the engine is timed
    engine = DetectionEngine(load_policies(), load_event_rules())
    ids, agents = {}, {}
    for i, d in enumerate(p.devices):
        ids[d.device] = i + 1
        engine.add_device(DeviceContext(i + 1, agents.setdefault(d.agent, len(agents) + 1), d.device, d.device,
                                        d.kind, d.customer, d.site, args.interval))
    samples = sum(len(m) for _, _, m in series)
    findings = 0
    began = time.process_time()
    last = None
    for ts, dev, metrics in series:
        if ts != last:
            last = ts
            for agent in agents.values():
                findings += len(engine.silence_check(agent))
        findings += len(engine.samples(ids[dev.device], [(ts, k, v) for k, v in metrics.items()]))
    cpu = time.process_time() - began
    print(f"{args.devices} devices x {args.days:g} days at {args.interval:g} s: {samples} samples, "
          f"{findings} findings, {cpu:.2f} CPU-s")
    print(f"engine_samples_per_s={samples / cpu:.0f} us_per_sample={cpu / samples * 1e6:.1f}")


if __name__ == "__main__":
    main()
