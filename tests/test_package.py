"""The package's one-screen API: every name in ``powerprune.__all__`` loads on first use."""


import pytest

from .paths import fresh_python


def test_importing_the_package_loads_none_of_its_api():
    """Only ``numerics`` (a few environment variables, no imports) runs: it must before torch loads."""
    run = fresh_python("import sys, powerprune; assert 'torch' not in sys.modules; "
                        "assert not [m for m in sys.modules if m.startswith('powerprune.') "
                        "and m != 'powerprune.numerics'], sorted(sys.modules)")
    assert run.returncode == 0, run.stderr


def test_every_exported_name_resolves_to_what_its_module_defines():
    import powerprune
    from powerprune import prune, reference
    from powerprune.prune.api import prune as prune_function

    assert set(powerprune.__all__) <= set(dir(powerprune))
    assert all(getattr(powerprune, name) is not None for name in powerprune.__all__)
    assert prune is prune_function and powerprune.run_reference is reference.run


def test_prune_and_quantize_stay_functions_when_their_namesake_submodules_are_imported_first():
    run = fresh_python("import powerprune.prune.energy, powerprune.quantize, powerprune.sweep\n"
                        "from powerprune import prune, quantize\n"
                        "from powerprune.prune.api import prune as p\n"
                        "from powerprune.quantize import quantize as q\n"
                        "assert (prune, quantize) == (p, q), (prune, quantize)")
    assert run.returncode == 0, run.stderr


def test_an_unknown_name_is_an_attribute_error():
    import powerprune

    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        powerprune.no_such_name  # noqa: B018
