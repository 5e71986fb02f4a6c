"""Tools for testing engines and plugins: the conformance kit and a small reference engine."""
