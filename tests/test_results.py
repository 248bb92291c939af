"""results holds the rows the sweep writes and the report reads, so the report needs no torch."""

from dataclasses import fields

import pytest

from powerprune.results import CSV_COLUMNS, METHOD_ORDER, METHODS, NOT_IN_CSV, Measurement, Row, model_label

from .paths import fresh_python


def test_importing_the_report_imports_no_torch():
    run = fresh_python("import sys, powerprune.report; assert 'torch' not in sys.modules, "
                        "'torch was imported'; assert 'powerprune.sweep' not in sys.modules, 'sweep was imported'")
    assert run.returncode == 0, run.stderr


def test_a_row_is_a_measurement_with_its_energy_and_the_csv_leaves_out_the_lists():
    measured = {f.name for f in fields(Measurement)}
    assert measured < {f.name for f in fields(Row)}
    assert "energy_mj" in CSV_COLUMNS and "energy_mj" not in measured
    assert not {f.name for f in fields(Row) if f.metadata == NOT_IN_CSV} & set(CSV_COLUMNS)
    assert {"cycles_per_layer", "widths", "tflite", "elf"} <= {f.name for f in fields(Row)} - set(CSV_COLUMNS)


def test_rows_are_ordered_and_labelled_by_the_methods_pruning_accepts():
    from powerprune.prune import PruneError, prune

    assert METHOD_ORDER == ("dense", *METHODS)
    assert [model_label(m, 4.0) for m in METHOD_ORDER] == ["dense", "magnitude 4x", "apoz 4x", "hybrid 4x",
                                                         "energy E/4"]
    with pytest.raises(PruneError, match=f"choose one of {', '.join(METHODS)}$"):
        prune(None, "nonsense", 4.0, None)
