"""Training the top blocks on cached lower-block hidden states, and scoring them there.

With the blocks below ``split`` frozen (and the embeddings and LM head, tied in small models),
the hidden state entering block ``split`` is a fixed function of each sequence.
:class:`FrozenPrefix` computes it once per sequence (:func:`npo.llm.layers.lower_hidden`) and
every later forward runs only the top blocks (:func:`npo.llm.layers.top_hidden`) with the LM
head applied at the positions that predict an answer token
(:func:`npo.logprobs.answer_targets`): exact, and far cheaper on a CPU when the answer is a
few tokens of each sequence. The cache is valid while the frozen weights do not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from npo.llm.encoding import Encoded, collate
from npo.llm.layers import decoder_blocks, lower_hidden, top_hidden
from npo.logprobs import answer_targets

__all__ = ["FrozenPrefix", "Packed"]


@dataclass(frozen=True)
class Packed:
    """The LM head's output at the scored positions of a batch of sequences.

    ``logits`` (M, V), ``targets`` (M,) the tokens they predict, ``rows`` (M,) the sequence of
    each position, ``n_seq`` the batch size.
    """

    logits: Tensor
    targets: Tensor
    rows: Tensor
    n_seq: int


class FrozenPrefix:
    """Cached hidden states entering block ``split`` for the sequences of several sources.

    Args:
        model: a causal LM of the Llama family whose blocks below ``split``, embeddings and LM
            head stay frozen while it is used.
        encoded: the sequences of each source (``prompt + answer + EOS``).
        split: the first block that trains.
        pad_id: the pad token id (padding never enters a scored position).
        batch_size: sequences per forward while caching.
        progress: show a progress bar.
    """

    def __init__(
        self,
        model: Any,
        encoded: Mapping[str, Encoded],
        *,
        split: int,
        pad_id: int,
        batch_size: int = 16,
        progress: bool = True,
    ) -> None:
        from tqdm.auto import tqdm

        decoder_blocks(model)  # validates the structure
        self.model, self.split, self.pad_id = model, split, pad_id
        self.encoded = dict(encoded)
        self.hidden: dict[str, list[Tensor]] = {}
        total = sum(len(e) for e in self.encoded.values())
        with tqdm(total=total, desc="cache lower blocks", unit="seq", disable=not progress) as bar:
            for name, enc in self.encoded.items():
                self.hidden[name] = []
                for s in range(0, len(enc), batch_size):
                    idx = list(range(s, min(s + batch_size, len(enc))))
                    batch = collate([enc.item(i) for i in idx], pad_id)
                    h = lower_hidden(model, batch["input_ids"], batch["attention_mask"], split)
                    for b, i in enumerate(idx):
                        self.hidden[name].append(h[b, : len(enc.input_ids[i])].clone())
                    bar.update(len(idx))

    def packed(self, items: Sequence[tuple[str, int]]) -> Packed:
        """The top blocks and the LM head on cached sequences (autograd through the top).

        Args:
            items: ``(source, index)`` pairs, one per sequence of the batch.

        Returns:
            The :class:`Packed` logits at the positions that predict an answer token.
        """
        seqs = [self.encoded[s].item(i) for s, i in items]
        batch = collate(seqs, self.pad_id)  # labels and mask of the right-padded batch
        b, t = batch["input_ids"].shape
        first = self.hidden[items[0][0]][items[0][1]]
        hidden = torch.zeros(b, t, first.shape[-1], dtype=first.dtype)
        for r, (s, i) in enumerate(items):
            h = self.hidden[s][i]
            hidden[r, : h.shape[0]] = h
        rows, cols, targets = answer_targets(batch["labels"])
        out = top_hidden(self.model, hidden, batch["attention_mask"], self.split)
        logits = self.model.lm_head(out[rows, cols])  # (M, V): answer positions only
        return Packed(logits, targets, rows, b)
