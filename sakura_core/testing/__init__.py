"""Tools for testing engines and plugins: the conformance kit (``sakura_core.testing.conformance``), reading
``/metrics`` samples (``sakura_core.testing.metrics``), a free port for a server to start on
(``sakura_core.testing.ports``) and the heap frozen around timing checks (``sakura_core.testing.heap``)."""
