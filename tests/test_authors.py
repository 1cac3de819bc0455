"""The fictitious-author generator (TOFU in miniature) and its split files."""

from __future__ import annotations

import json

import pytest

from synthetic.transformer import (
    ATTRIBUTES,
    AuthorsConfig,
    generate_authors,
    split_authors,
    write_tofu_splits,
)


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_deterministic_and_seed_dependent():
    a, b = generate_authors(AuthorsConfig(seed=3)), generate_authors(AuthorsConfig(seed=3))
    assert a.rows == b.rows and a.authors == b.authors
    assert generate_authors(AuthorsConfig(seed=4)).rows != a.rows


def test_rows_follow_tofu_construction():
    data = generate_authors(AuthorsConfig(n_authors=12, qa_per_author=16))
    assert len(data.rows) == 12 * 16
    assert len({a["name"] for a in data.authors}) == 12
    for i, row in enumerate(data.rows):
        author = data.authors[i // 16]
        assert author["name"] in row["question"] and author["name"] in row["paraphrased_question"]
        assert len(row["perturbed_answer"]) == 5 == len(set(row["perturbed_answer"]))
        # the true value appears in the answer and the paraphrase, never in a perturbed answer
        values = [v for k, v in author.items() if k != "name" and v in row["answer"]]
        value = max(values, key=len)
        assert value in row["paraphrased_answer"]
        # perturbed answers are the paraphrase's template with another value
        prefix, suffix = row["paraphrased_answer"].split(value, 1)
        for pert in row["perturbed_answer"]:
            assert pert.startswith(prefix) and pert.endswith(suffix)
            assert pert[len(prefix) : len(pert) - len(suffix)] != value
    templates = sum(len(q) for q, _ in ATTRIBUTES.values())
    assert templates == 16


def test_utility_sets_and_refusals():
    data = generate_authors(AuthorsConfig(n_utility=15))
    for rows in (data.real_authors, data.world_facts):
        assert len(rows) == 15
        for r in rows:
            assert len(r["perturbed_answer"]) == 3 and r["answer"] not in r["perturbed_answer"]
    assert all(r["answer"].endswith("is " + r["answer"].split()[-1]) for r in data.world_facts)
    assert len(data.idk) >= 5


def test_split_files(tmp_path):
    data = generate_authors(AuthorsConfig(n_authors=20, qa_per_author=4))
    report = write_tofu_splits(data, tmp_path)
    assert report["written"] == {5: 1, 10: 2, 20: 4, 50: 10, 90: 18}
    assert "no whole author" in report["skipped"][1]
    full = _read(tmp_path / "full.json")
    assert len(full) == 80 and set(full[0]) == {"question", "answer"}
    for pct, count in report["written"].items():
        forget = _read(tmp_path / f"forget{pct:02d}.json")
        retain = _read(tmp_path / f"retain{100 - pct:02d}.json")
        assert forget == full[len(full) - 4 * count :] and retain + forget == full
        pert = _read(tmp_path / f"forget{pct:02d}_perturbed.json")
        assert [(r["question"], r["answer"]) for r in pert] == [
            (r["question"], r["answer"]) for r in forget
        ]
    retain_pert = _read(tmp_path / "retain_perturbed.json")
    assert len(retain_pert) == 2 * 4  # first 10% of authors
    assert {r["question"] for r in retain_pert}.isdisjoint(
        r["question"] for r in _read(tmp_path / "forget90.json")
    )
    assert len(_read(tmp_path / "world_facts_perturbed.json")) == 20
    assert (tmp_path / "idontknow.jsonl").read_text().count("\n") == len(data.idk) - 1


def test_split_rounding():
    assert split_authors(20, 10) == 2 and split_authors(20, 1) is None
    assert split_authors(30, 5) == 2 and split_authors(10, 100) is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_authors": 0}, "n_authors must be in"),
        ({"qa_per_author": 17}, r"qa_per_author must be in \[1, 16\]"),
        ({"n_perturbed": 6}, "n_perturbed must be in"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AuthorsConfig(**kwargs)
