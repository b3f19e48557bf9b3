"""The `aco-lab` console script: the lab's command line, or one line on how to install the lab.

`pip install aco` installs the runtime only; the lab's stack (polars, pyarrow, scikit-learn,
lightgbm, matplotlib, threadpoolctl, altair, vl-convert) comes with the `lab` extra. This module
imports none of it, so that without the stack `aco-lab` says what to install instead of a
traceback.
"""

import importlib.util
import sys

LAB_INSTALL = "pip install 'aco[lab]' (from a checkout: pip install '.[lab]')"
# Import names of the `lab` extra's packages (pyproject.toml), all checked before any command
# runs: some load only inside a command (lightgbm, to train), which is too late to say so.
LAB_MODULES = (
    "polars",
    "pyarrow",
    "sklearn",
    "lightgbm",
    "matplotlib",
    "threadpoolctl",
    "altair",
    "vl_convert",
)


def missing_lab_modules() -> list[str]:
    """The lab packages that cannot be imported here (found without importing them)."""
    return [name for name in LAB_MODULES if importlib.util.find_spec(name) is None]


def main() -> None:
    """Run `aco-lab`, or exit 1 with one line naming what is missing and how to install it."""
    missing = missing_lab_modules()
    if missing:
        sys.stderr.write(
            f"error: aco-lab needs the lab packages ({', '.join(missing)} not "
            f"installed); install them with: {LAB_INSTALL}\n"
        )
        sys.exit(1)
    from aco_lab.cli import main as lab_main

    lab_main()
