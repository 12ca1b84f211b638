"""Build `connman._speedups`, the C form of `connman._datapath`, into the wheel (decision 54).

The extension is optional: without a C compiler the wheel is pure Python and connman runs the same
Python classes, slower on the data path. `CONNMAN_REQUIRE_SPEEDUPS=1` turns a failed build into an
error (CI sets it); `CONNMAN_PURE_PYTHON=1` skips the build. An editable install (`make`'s
bootstrap) builds the extension in place, next to `_datapath.py`, where the editable path finds it.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("src", "connman", "_speedups.c")


class SpeedupsBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        source = Path(self.root, SOURCE)
        if version == "editable":  # an old build in place must not outlive a failed or skipped one
            for stale in source.parent.glob("_speedups*.so"):
                stale.unlink()
        if os.environ.get("CONNMAN_PURE_PYTHON"):
            return
        name = "_speedups" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")
        self._work = Path(tempfile.mkdtemp(prefix="connman-build-"))
        try:
            built = compile_extension(source, self._work)
        except Exception as exc:  # no compiler, no headers: the pure-Python wheel still works
            if os.environ.get("CONNMAN_REQUIRE_SPEEDUPS"):
                raise
            print(f"connman: _speedups not built ({exc}); the data path runs in Python", file=sys.stderr)
            return
        if version == "editable":
            source.with_name(name).write_bytes(built.read_bytes())
        else:
            build_data["force_include"][str(built)] = f"connman/{name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def compile_extension(source: Path, work: Path) -> Path:
    """Compile `source` with setuptools' `build_ext` (the platform's compiler and flags) in `work`."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    extension = Extension("connman._speedups", [str(source)])
    command = build_ext(Distribution({"name": "connman", "ext_modules": [extension]}))
    command.build_lib = str(work / "lib")
    command.build_temp = str(work / "temp")
    command.ensure_finalized()
    command.run()
    return Path(command.get_ext_fullpath("connman._speedups"))
