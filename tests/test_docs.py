"""The examples in public classes' docstrings run as written."""
import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["facedist.cluster", "facedist.people", "facedist.align",
                                  "facedist.store", "facedist.api", "facedist.discover"])
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
