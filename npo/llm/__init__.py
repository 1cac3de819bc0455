"""The LLM path: Hugging Face causal LMs on TOFU-format data, on the shared kernels.

- :mod:`npo.llm.data`: TOFU files (validated), prompting, tokenisation, padding, pairing.
- :mod:`npo.llm.model`: loading (safetensors only), the tiny Llama, LoRA, precision.
- :mod:`npo.llm.reference`: reference log-probs computed once and cached; live reference for KL.
- :mod:`npo.llm.step`: the method-agnostic step and the data-parallel batch plan.
- :mod:`npo.llm.config`, :mod:`npo.llm.train`, :mod:`npo.llm.setup`, :mod:`npo.llm.loop`,
  :mod:`npo.llm.checkpoint`: configs, the ``finetune``/``unlearn`` API, the loop, checkpoints.

Heavy libraries (transformers, accelerate, peft) are imported where used.
"""
