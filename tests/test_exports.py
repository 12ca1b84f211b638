"""The public surface: `__all__` is complete, everything in it is documented, nothing private leaks."""

from __future__ import annotations

import inspect

import connman
import connman.errors
import connman.events
import connman.framing
import connman.testing


def test_all_names_exist_and_are_documented() -> None:
    for module in (connman, connman.errors, connman.events, connman.framing, connman.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            assert not name.startswith("_") or name == "__version__"
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert obj.__doc__, f"{module.__name__}.{name} has no docstring"


def test_public_methods_are_documented() -> None:
    for cls in (connman.Connection, connman.Pool, connman.ConnectionManager, connman.Backoff, connman.Wait):
        for name, member in vars(cls).items():
            if name.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
                continue
            assert member.__doc__, f"{cls.__name__}.{name} has no docstring"


def test_every_public_class_in_the_package_is_exported() -> None:
    exported = set(connman.__all__)
    for name, obj in vars(connman).items():
        if inspect.isclass(obj) and obj.__module__.startswith("connman") and not name.startswith("_"):
            assert name in exported, name


def test_errors_tree() -> None:
    assert issubclass(connman.NotConnected, connman.ConnmanError)
    assert issubclass(connman.NotConnected, ConnectionError)
    for error in (connman.Disconnected, connman.GaveUp, connman.QueueFull, connman.PoolError):
        assert issubclass(error, connman.ConnmanError)
        assert not issubclass(error, ConnectionError)
    assert issubclass(connman.PoolExists, connman.PoolError)
    assert issubclass(connman.PoolNotFound, connman.PoolError)


def test_version_is_a_string() -> None:
    assert isinstance(connman.__version__, str)
    assert connman.__version__.count(".") == 2


def test_every_summary_line_is_a_whole_sentence() -> None:
    # The API reference's tables show a docstring's first line only: a first sentence that runs on
    # to the next line reads there as a sentence cut off ("... no event about it follows, except").
    import connman.dialers

    pending: set[str] = set()
    cut: list[str] = []
    for module in (
        connman,
        connman.errors,
        connman.events,
        connman.framing,
        connman.testing,
        connman.dialers,
    ):
        for name in module.__all__:
            obj = getattr(module, name)
            members = [(name, obj)]
            if inspect.isclass(obj):
                members += [
                    (f"{name}.{key}", value)
                    for key, value in vars(obj).items()
                    if not key.startswith("_") and inspect.isfunction(value)
                ]
            for qualname, member in members:
                if not (inspect.isclass(member) or inspect.isfunction(member)) or not member.__doc__:
                    continue
                first = inspect.cleandoc(member.__doc__).splitlines()[0]
                if not first.endswith((".", ":")) and qualname not in pending:
                    cut.append(f"{module.__name__}.{qualname}: {first!r}")
    assert not cut, "\n".join(cut)
