"""DVC from Python: the pipeline as data (pipeline.py, no Prefect), the Prefect task that runs a stage (dvc.py), and the `make study PROFILE=P` runner (experiment.py, no Prefect)."""
