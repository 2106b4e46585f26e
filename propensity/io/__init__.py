"""Side effects on files and engines: reading inputs into DuckDB, writing outputs atomically."""

from propensity.io.atomic import atomic_path, atomic_paths, write_table
from propensity.io.clean import Drop
from propensity.io.export import export_canonical
from propensity.io.load import LoadedData, connect, load_data
from propensity.io.previous import read_previous_scores
from propensity.io.summary import DataSummary, TableSummary

__all__ = [
    "Drop",
    "DataSummary",
    "LoadedData",
    "TableSummary",
    "atomic_path",
    "atomic_paths",
    "connect",
    "export_canonical",
    "load_data",
    "read_previous_scores",
    "write_table",
]
