"""The data path's two forms, C (`connman._speedups`) and Python (`connman._datapath`), as one.

Their behaviour is held to one by the whole suite, which `make test` runs under both (the data-path
tests a second time with `CONNMAN_PURE_PYTHON=1`); these tests check which form is in use and that
the C classes have the fields and methods of the Python ones, so that neither can drift silently.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from types import ModuleType

import pytest

from connman import _datapath

#: What each class adds itself: its fields (the Python `__slots__`) and the methods the C form has.
METHODS = {"Writer": {"write"}, "DispatcherBase": set(), "Receiver": {"buffer_updated", "data_received"}}


def speedups() -> ModuleType | None:
    if importlib.util.find_spec("connman._speedups") is None:
        return None
    from connman import _speedups  # type: ignore[attr-defined]

    return _speedups  # type: ignore[no-any-return]


def test_the_c_form_is_in_use_when_built_and_not_turned_off() -> None:
    built = speedups() is not None
    assert _datapath.ACCELERATED is (built and not os.environ.get("CONNMAN_PURE_PYTHON"))
    if os.environ.get("CONNMAN_REQUIRE_SPEEDUPS"):  # CI: the install must have built it
        assert built


def test_pure_python_is_chosen_by_the_environment() -> None:
    code = "import connman._datapath as d, connman; print(d.ACCELERATED, connman.Connection.write.__module__)"
    env = {**os.environ, "CONNMAN_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "connman._datapath"]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_the_c_classes_have_the_python_classes_fields_and_methods(name: str) -> None:
    module = speedups()
    if module is None:  # no C compiler at install: the Python classes serve (the test above)
        assert not _datapath.ACCELERATED
        return
    reference, compiled = _datapath.REFERENCE[name], getattr(module, name)
    fields = set(reference.__slots__)
    assert fields <= set(vars(compiled)), f"{name}: fields missing in C: {fields - set(vars(compiled))}"
    for method in METHODS[name]:
        assert method in vars(reference) and method in vars(compiled), (name, method)
    added = {key for key in vars(compiled) if not key.startswith("__")}
    assert added == fields | METHODS[name], f"{name}: the C class has more than the Python one"


def test_the_c_form_catches_what_the_dispatcher_catches() -> None:
    from connman._callbacks import _CAUGHT

    module = speedups()
    if module is None:  # nothing to compare: the Python form catches _CAUGHT itself
        assert not _datapath.ACCELERATED
        return
    assert module.CAUGHT == _CAUGHT
