"""Prefect tasks: thin wrappers that call the bindlab stage functions (the same ones the DVC stages run)."""
