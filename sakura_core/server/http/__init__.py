"""The HTTP layer: connections, bodies, JSON, server-sent events, CORS, auth and errors; nothing Sakura-specific."""
