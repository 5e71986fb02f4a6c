"""Tools for testing engines and plugins: the conformance kit (``sakura_core.testing.conformance``) and reading
``/metrics`` samples (``sakura_core.testing.metrics``)."""
