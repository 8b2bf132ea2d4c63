"""The tests are src/slimbench/suite/test_attribution.py, shipped in the package (what `slimbench init` copies).

Imported here, one source, so that this folder's conftest.py runs them on the bundled variants."""

from slimbench.suite.test_attribution import *  # noqa: F403
