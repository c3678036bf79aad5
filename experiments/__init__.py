"""Measurements that answer a question about the study (not speed, not tests): each writes its curve
to a JSON file given with --out; docs/measurements.md records the commands and the figures.

    python -m experiments.readout   per-type legibility of the renders: a supervised readout per object
    python -m experiments.siblings  scenes with minimal-pair siblings in one batch against the ideal, on
                                    the same samples seen: seeing per type beside the batch statistic
"""
