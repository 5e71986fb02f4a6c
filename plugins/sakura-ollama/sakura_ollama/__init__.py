"""sakura-ollama: the Sakura API in front of an Ollama server, for every Sakura client and the models Ollama manages.

Installing the distribution registers the ``ollama`` engine (entry point ``ollama = "sakura_ollama.plugin"`` in the
``sakura`` group): ``sakura run --engine ollama --model TAG_OR_GGUF``. The ``ollama`` client library is imported only
when a model is loaded.
"""

__version__ = "0.1.0"
