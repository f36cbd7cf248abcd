"""Measured-serving CSVs written in tests, and their rows served by `opgraph validate`'s own path."""

from opgraph.analysis.serving_validate import validate_serving
from opgraph.choices import serving_row
from opgraph.files import serving_measurements

COLUMNS = "model,gpu,engine,tp,concurrency,prompt_tokens,output_tokens,ttft_ms,tpot_ms"


def serving_csv(tmp_path, extra: str, *rows: str):
    """A serving CSV of the required columns, then `extra` (comma-separated), one row a string."""
    f = tmp_path / "rows.csv"
    f.write_text(f"{COLUMNS},{extra}\n" + "".join(f"{r}\n" for r in rows))
    return f


def predicted(path) -> tuple:
    """Every row of the file, served as `opgraph validate` serves it (steady protocol)."""
    return validate_serving(serving_measurements.read(path), serving_row, str(path)).predictions
