"""Side effects on files and engines: reading inputs into DuckDB, writing outputs atomically."""

from propensity.io.atomic import atomic_path, write_table
from propensity.io.export import export_canonical
from propensity.io.load import LoadedData, connect, load_data
from propensity.io.report import Drop, LoadReport, TableSummary

__all__ = [
    "Drop",
    "LoadReport",
    "LoadedData",
    "TableSummary",
    "atomic_path",
    "connect",
    "export_canonical",
    "load_data",
    "write_table",
]
