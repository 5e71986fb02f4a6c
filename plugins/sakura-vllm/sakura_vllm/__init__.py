"""sakura-vllm: the vLLM engine for sakura (Transformers, GPTQ and AWQ models; tensor/pipeline parallel, Ray).

Importing this package is cheap: vLLM is imported only when a model is loaded.
"""

__version__ = "0.1.0"
