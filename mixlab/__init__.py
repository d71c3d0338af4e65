"""Machinery shared by the `curate` and `train` commands: errors, config loading, logging and progress."""

__version__ = "0.1.0"
