"""bindlab: the domain logic of the attribute-binding study (no Prefect, no DVC in here)."""
__version__ = "0.1.0"
