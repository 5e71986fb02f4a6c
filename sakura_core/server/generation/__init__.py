"""The generation core of the server: from a prepared request to the engine's deltas, admission, metrics, state."""
