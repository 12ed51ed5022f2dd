"""Lazy package exports (`satflow.lazy`): names resolve on first use, an unknown name is an AttributeError."""

import subprocess
import sys

import pytest

from satflow.lazy import exports_of, lazy_getattr


def test_a_lazy_export_imports_its_module_on_first_use_only():
    code = ("import sys, satflow.index as index; before = 'satflow.index.io' in sys.modules; "
            "index.read_index; print(before, 'satflow.index.io' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]


def test_an_unknown_name_is_an_attribute_error_naming_the_package():
    getter = lazy_getattr("pkg", exports_of({"json": ["dumps"]}))
    assert getter("dumps")({"a": 1}) == '{"a": 1}'
    with pytest.raises(AttributeError, match=r"^module 'pkg' has no attribute 'loads'$"):
        getter("loads")
