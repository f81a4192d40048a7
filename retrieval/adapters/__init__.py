"""Model adapters: the only modules of ``retrieval`` that import onnxruntime or tokenizers."""
