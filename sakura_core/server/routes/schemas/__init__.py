"""Pydantic models of every request and response body the server reads or writes.

``common`` holds the shared parts (errors, usage, sampling fields); ``openai``, ``llamacpp`` and ``sakura`` the
bodies of each family of routes. The OpenAPI document is generated from these models.
"""
