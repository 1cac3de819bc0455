"""The data order and the forget/retain pairing, as pure functions of seeds.

Epochs are seeded permutations; a forget item's retain partner and its IDK answer are drawn
from ``(seed, epoch)`` (``random``) or as the official NPO/TOFU code draws them (``fixed``).
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["idk_choices", "retain_partners", "seeded_permutation"]


def _generator(*parts: object) -> torch.Generator:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


def seeded_permutation(n: int, *, seed: int, epoch: int, salt: str = "order") -> list[int]:
    """A permutation of ``range(n)`` that depends only on ``(seed, epoch, salt)``.

    Returns:
        The permuted indices.
    """
    return torch.randperm(n, generator=_generator(seed, epoch, salt)).tolist()


def retain_partners(
    n_forget: int, n_retain: int, *, seed: int, epoch: int, pairing: str
) -> list[int]:
    """The retain partner of each forget item in ``epoch``.

    ``random``: a fresh seeded draw every epoch, without repeats while ``n_retain`` allows.
    ``fixed``: the official NPO/TOFU code's partners, the same every epoch and seed:
    ``(i + randint(0, n_retain)) % n_retain`` with torch's generator seeded by ``i``.

    Returns:
        One retain index per forget item.
    """
    if n_retain < 1:
        raise ValueError("the retain split is empty")
    if pairing == "fixed":
        return [
            (i + int(torch.randint(0, n_retain, (1,), generator=torch.Generator().manual_seed(i))))
            % n_retain
            for i in range(n_forget)
        ]
    if pairing != "random":
        raise ValueError(f"pairing must be 'random' or 'fixed', got {pairing!r}")
    out: list[int] = []
    rounds = 0
    while len(out) < n_forget:
        out += seeded_permutation(n_retain, seed=seed, epoch=epoch, salt=f"partner{rounds}")
        rounds += 1
    return out[:n_forget]


def idk_choices(n_forget: int, n_idk: int, *, seed: int, pairing: str) -> list[int]:
    """Which IDK answer each forget item gets.

    Fixed for the whole run (never per epoch), so cached reference log-probs of the IDK
    sequences stay valid. ``fixed`` pairing uses the official code's choice (``randint(0,
    n_idk)`` with torch's generator seeded by ``i``).

    Returns:
        One IDK answer index per forget item.
    """
    if pairing == "fixed":
        return [
            int(torch.randint(0, n_idk, (1,), generator=torch.Generator().manual_seed(i)))
            for i in range(n_forget)
        ]
    return torch.randint(0, n_idk, (n_forget,), generator=_generator(seed, "idk")).tolist()
