"""Measurements that answer a question about the study (not speed, not tests): each writes its curve
to a JSON file given with --out; docs/measurements.md records the commands and the figures.

    python -m experiments.readout   per-type legibility of the renders: a supervised readout per object
"""
