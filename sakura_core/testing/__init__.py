"""Tools for testing engines and plugins: the conformance kit, a small reference engine, a /metrics reader."""
