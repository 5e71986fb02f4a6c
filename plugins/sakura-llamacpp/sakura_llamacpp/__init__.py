"""sakura-llamacpp: the llama.cpp engine for sakura (GGUF models in-process through llama-cpp-python).

Importing this package is cheap: llama-cpp-python is imported only when a model is loaded.
"""

__version__ = "0.1.0"
