"""The LLM path: Hugging Face causal LMs on TOFU-format data, on the shared kernels.

Beside the two subpackages, what both use:

- :mod:`npo.llm.data`: TOFU files, validated (:func:`~npo.llm.data.tofu_dir` finds the real
  ones);
- :mod:`npo.llm.encoding`: prompting, tokenization and padding
  (:func:`~npo.llm.encoding.encode_qa`, :func:`~npo.llm.encoding.collate`);
- :mod:`npo.llm.order`: the data order and the forget/retain pairing;
- :mod:`npo.llm.model`: loading (safetensors only), the tiny Llama, LoRA, precision, saving;
- :mod:`npo.llm.subset`: :func:`~npo.llm.subset.write_tofu_subset`, a few real TOFU authors in
  TOFU format;
- :mod:`npo.llm.forward`: the forward pass that returns logits
  (:func:`~npo.llm.forward.forward_logits`) and the train/eval-mode context
  (:func:`~npo.llm.forward.eval_mode`);
- :mod:`npo.llm.configs`: ready ``accelerate launch`` configurations (FSDP2, ZeRO-3).

The subpackages:

- :mod:`npo.llm.train`: run configs, the ``finetune``/``unlearn`` API, run assembly, the loop
  and the method-agnostic step, the reference log-prob cache, checkpoints and resume;
- :mod:`npo.llm.eval`: the TOFU evaluation: sets, scoring, metrics, the results file, curves.

Public names are those of each module's ``__all__``; the subpackages re-export theirs
(``from npo.llm.train import unlearn``, ``from npo.llm.eval import evaluate_model``). Importing
this package imports nothing; heavy libraries (transformers, accelerate, peft) are imported
where used. It never imports :mod:`synthetic` or :mod:`theory`.
"""
