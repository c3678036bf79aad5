"""Prefect flows over the study (flows/study.py) and the command that serves them (flows/serve.py)."""
