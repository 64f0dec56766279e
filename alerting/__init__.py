"""Turns device health into work: the scheduler that runs periodic jobs (and, in later issues,
detectors, health scores, cases with SLA clocks, and the inspection plan)."""
