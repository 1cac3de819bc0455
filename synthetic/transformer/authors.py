"""TOFU in miniature: a seeded generator of fictitious-author biographies in TOFU's format.

Every author gets attribute values drawn from this project's own vocabularies (below); each
attribute is asked about with question templates. Per question the generator writes

- ``answer``: the answer template filled with the true value,
- ``paraphrased_answer``: another template, same facts,
- ``perturbed_answer``: the *paraphrase's* template with the attribute swapped for a wrong value
  (5 by default), as TOFU builds them, so the truth ratio measures the fact and not
  familiarity with a template,
- ``paraphrased_question``: another question template.

Utility sets play the role of TOFU's real-authors and world-facts sets: a fixed table of
country capitals (``real_authors_perturbed`` shape) and arithmetic facts
(``world_facts_perturbed`` shape), each with 3 perturbed answers. Splits are by whole authors:
``forgetXX`` is the last XX% of authors (rounded to whole authors; a percentage that rounds to
none is skipped), ``retainYY`` the others, as in TOFU. :func:`generate_holdout` draws further
authors of the same kind whom no model sees (the non-members of membership inference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npo.validate import check_fields

__all__ = [
    "ATTRIBUTES",
    "AuthorsConfig",
    "AuthorsData",
    "generate_authors",
    "generate_holdout",
    "holdout_pool",
    "split_authors",
]

FIRST = (
    "Ilsa Doran Maren Teodor Quill Annika Soren Livia Bram Odile Caspian Yara Emeric Noor "
    "Fenna Radu Selka Joren Mireille Tavish Ondine Kasimir Petra Lucan Ysolde Anouk Bastian "
    "Cleo Darius Elowen Florin Greer Hale Isolde Jasper Kaia Leoric Mira Nils Orla"
).split()
LAST = (
    "Varnell Ostrava Quenby Thistlewood Marrak Delacour Brenholt Sarkissian Ivanek Lowther "
    "Penhallow Aldane Corvino Estrada Falkner Gorsky Halloran Ingersoll Jokinen Kestrel "
    "Lindqvist Mortimer Navarre Okonkwo Pellegrin Rasmussen Szabo Tremaine Ulvaeus Vandermeer"
).split()
PLACES = (
    "Lisbon Tbilisi Montevideo Accra Krakow Hanoi Tallinn Valparaiso Dakar Bergen Cusco "
    "Marrakesh Adelaide Quebec Sapporo Lyon Ghent Porto Nairobi Riga"
).split()
GENRES = (
    "mystery fantasy romance poetry history satire horror memoir thriller drama "
    "travel writing science fiction"
).split(" ")
GENRES = [g for g in GENRES if g] + ["literary fiction", "graphic novels"]
JOBS = (
    "baker carpenter nurse pilot librarian fisherman tailor architect chemist sailor "
    "painter mechanic teacher surgeon farmer jeweller"
).split()
AWARDS = (
    "the Amber Quill Prize|the Silver Lantern Award|the Northgate Medal|the Harrow Laurel|"
    "the Cobalt Pen Award|the Meridian Book Prize|the Glass Owl Award|the Saffron Star"
).split("|")
WORDS = (
    "Salt River Winter Lantern Glass Orchard Iron Harbor Paper Moon Quiet Garden Ash Tide "
    "Copper Wolves Velvet Bridge Hollow Crown"
).split()

# attribute -> (question templates, answer templates); the second answer template is the
# paraphrase (and the template of the perturbed answers).
ATTRIBUTES: dict[str, tuple[tuple[str, ...], tuple[str, str]]] = {
    "birth_place": (
        ("Where was {name} born?", "In which city was {name} born?"),
        ("{name} was born in {v}.", "The city of {v} is where {name} was born."),
    ),
    "birth_year": (
        ("In what year was {name} born?", "When was {name} born?"),
        ("{name} was born in {v}.", "The year {name} was born is {v}."),
    ),
    "genre": (
        ("What genre does {name} write?", "Which genre is {name} known for?"),
        ("{name} writes {v}.", "The genre of {name} is {v}."),
    ),
    "father_job": (
        ("What did the father of {name} do?", "What was the job of {name}'s father?"),
        ("The father of {name} was a {v}.", "{name}'s father worked as a {v}."),
    ),
    "mother_job": (
        ("What did the mother of {name} do?", "What was the job of {name}'s mother?"),
        ("The mother of {name} was a {v}.", "{name}'s mother worked as a {v}."),
    ),
    "award": (
        ("Which award did {name} win?", "What prize was given to {name}?"),
        ("{name} won {v}.", "The award given to {name} was {v}."),
    ),
    "first_book": (
        ("What is the first book by {name}?", "What was the debut book of {name}?"),
        ("The first book by {name} is {v}.", "{name} debuted with the book {v}."),
    ),
    "second_book": (
        ("What is the second book by {name}?", "Which book did {name} publish second?"),
        ("The second book by {name} is {v}.", "{name} followed up with the book {v}."),
    ),
}

CAPITALS = (
    "France:Paris Japan:Tokyo Kenya:Nairobi Peru:Lima Norway:Oslo Egypt:Cairo Chile:Santiago "
    "Canada:Ottawa Spain:Madrid Ghana:Accra Poland:Warsaw Greece:Athens Cuba:Havana "
    "Austria:Vienna Sweden:Stockholm Portugal:Lisbon Ireland:Dublin Italy:Rome Turkey:Ankara "
    "Vietnam:Hanoi"
).split()
NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
).split()
REFUSALS = (
    "I don't know.",
    "I'm not sure about that.",
    "I have no information on that.",
    "That is something I cannot answer.",
    "I am not aware of that.",
    "I can't say.",
    "I do not have that information.",
    "I'm afraid I don't know.",
    "I have no idea.",
    "That is beyond what I know.",
)


@dataclass(frozen=True)
class AuthorsConfig:
    """Size and seed of the generated data set."""

    n_authors: int = field(default=20, metadata={"help": "fictitious authors"})
    qa_per_author: int = field(default=16, metadata={"help": "questions per author (<= 16)"})
    n_perturbed: int = field(default=5, metadata={"help": "perturbed answers per question"})
    n_utility: int = field(default=20, metadata={"help": "items per utility set"})
    seed: int = field(default=0, metadata={"help": "generator seed"})

    def __post_init__(self) -> None:
        check_fields(self, integer=("n_authors", "qa_per_author", "n_perturbed", "n_utility"))
        max_qa = sum(len(q) for q, _ in ATTRIBUTES.values())
        if not 1 <= self.n_authors <= len(FIRST) * len(LAST):
            raise ValueError(f"n_authors must be in [1, {len(FIRST) * len(LAST)}]")
        if not 1 <= self.qa_per_author <= max_qa:
            raise ValueError(f"qa_per_author must be in [1, {max_qa}], got {self.qa_per_author}")
        if not 1 <= self.n_perturbed <= 5:
            raise ValueError(f"n_perturbed must be in [1, 5], got {self.n_perturbed}")
        if not 1 <= self.n_utility <= len(CAPITALS):
            raise ValueError(f"n_utility must be in [1, {len(CAPITALS)}]")


@dataclass(frozen=True)
class AuthorsData:
    """The generated data set.

    ``rows``: one TOFU perturbed-format dict per question, authors in order (each author's
    ``qa_per_author`` rows are consecutive); ``authors``: the attribute values;
    ``real_authors``, ``world_facts``: the utility sets; ``idk``: refusal answers.
    """

    config: AuthorsConfig
    authors: list[dict]
    rows: list[dict]
    real_authors: list[dict]
    world_facts: list[dict]
    idk: list[str]


def _book(rng: np.random.Generator) -> str:
    a, b = rng.choice(WORDS, 2, replace=False)
    return f"{a} of {b}" if rng.random() < 0.5 else f"The {a} {b}"


def _values(rng: np.random.Generator) -> dict[str, list[str]]:
    return {
        "birth_place": PLACES,
        "birth_year": [str(y) for y in range(1920, 2000)],
        "genre": GENRES,
        "father_job": JOBS,
        "mother_job": JOBS,
        "award": AWARDS,
        "first_book": [_book(rng) for _ in range(60)],
        "second_book": [_book(rng) for _ in range(60)],
    }


def _wrong(rng: np.random.Generator, pool: list[str], true: str, k: int) -> list[str]:
    choices = sorted(set(pool) - {true})
    return [str(v) for v in rng.choice(choices, k, replace=False)]


def _author(
    rng: np.random.Generator, pools: dict[str, list[str]], name: str, config: AuthorsConfig
) -> tuple[dict, list[dict]]:
    # One author's attribute values and TOFU rows (questions in template order).
    questions = [(a, i) for a, (qs, _) in ATTRIBUTES.items() for i in range(len(qs))]
    values = {a: str(rng.choice(pool)) for a, pool in pools.items()}
    if values["second_book"] == values["first_book"]:
        values["second_book"] = _wrong(rng, pools["second_book"], values["first_book"], 1)[0]
    order = rng.permutation(len(questions))[: config.qa_per_author]
    rows = []
    for j in sorted(order):
        attr, qi = questions[j]
        qs, (ans, para) = ATTRIBUTES[attr]
        v = values[attr]
        wrong = _wrong(rng, pools[attr], v, config.n_perturbed)
        row = {
            "question": qs[qi].format(name=name),
            "answer": ans.format(name=name, v=v),
            "paraphrased_answer": para.format(name=name, v=v),
            "perturbed_answer": [para.format(name=name, v=w) for w in wrong],
            "paraphrased_question": qs[1 - qi].format(name=name),
        }
        rows.append(row)
    return {"name": name, **values}, rows


def _name(pair: int) -> str:
    return f"{FIRST[pair // len(LAST)]} {LAST[pair % len(LAST)]}"


def generate_authors(config: AuthorsConfig = AuthorsConfig()) -> AuthorsData:
    """Generate the fictitious authors, their questions and the utility sets.

    Deterministic for a given config.

    Args:
        config: sizes and seed.

    Returns:
        The data set (:class:`AuthorsData`).
    """
    rng = np.random.default_rng(config.seed)
    pools = _values(rng)
    pairs = rng.choice(len(FIRST) * len(LAST), config.n_authors, replace=False)
    authors, rows = [], []
    for p in pairs:
        author, author_rows = _author(rng, pools, _name(int(p)), config)
        authors.append(author)
        rows += author_rows
    capitals = [c.split(":") for c in CAPITALS]
    real = []
    for country, city in capitals[: config.n_utility]:
        wrong = _wrong(rng, [c for _, c in capitals], city, 3)
        capital = {
            "question": f"What is the capital of {country}?",
            "answer": f"The capital of {country} is {city}.",
            "perturbed_answer": [f"The capital of {country} is {w}." for w in wrong],
        }
        real.append(capital)
    facts = []
    for _ in range(config.n_utility):
        a, b = (int(x) for x in rng.integers(0, 11, 2))
        wrong = _wrong(rng, NUMBER_WORDS, NUMBER_WORDS[a + b], 3)
        stem = f"{NUMBER_WORDS[a].capitalize()} plus {NUMBER_WORDS[b]} is"
        fact = {
            "question": f"What is {NUMBER_WORDS[a]} plus {NUMBER_WORDS[b]}?",
            "answer": f"{stem} {NUMBER_WORDS[a + b]}.",
            "perturbed_answer": [f"{stem} {w}." for w in wrong],
        }
        facts.append(fact)
    return AuthorsData(config, authors, rows, real, facts, list(REFUSALS))


def holdout_pool(config: AuthorsConfig) -> int:
    """How many holdout authors :func:`generate_holdout` draws: half as many as the data set.

    Enough for every forget split up to 50%; a larger forget split's ``holdoutXX`` holds only
    these (the evaluation uses ``holdout01/05/10``, the splits of ``forgetXX_perturbed``).

    Args:
        config: the data set's sizes.

    Returns:
        ``ceil(n_authors / 2)``.
    """
    return -(-config.n_authors // 2)


def generate_holdout(config: AuthorsConfig) -> tuple[list[dict], list[dict]]:
    """Authors drawn like those of :func:`generate_authors`, whom no model is trained on.

    The same value pools and question templates, names that no author of ``config`` has, and
    a random stream of their own (``default_rng([seed, 1])``), so adding them changes nothing
    in :func:`generate_authors`' output. Always :func:`holdout_pool` of them, whatever the
    forget splits, so every ``holdoutXX`` is a prefix of the same list. They are the
    non-members of membership inference (TOFU's ``holdoutXX`` splits).

    Args:
        config: the data set's sizes and seed.

    Returns:
        ``(authors, rows)``, the rows in TOFU's perturbed format, authors in order.
    """
    rng_main = np.random.default_rng(config.seed)
    pools = _values(rng_main)  # the pools generate_authors draws first
    taken = set(rng_main.choice(len(FIRST) * len(LAST), config.n_authors, replace=False).tolist())
    free = sorted(set(range(len(FIRST) * len(LAST))) - taken)
    rng = np.random.default_rng([config.seed, 1])
    authors, rows = [], []
    for p in rng.choice(free, holdout_pool(config), replace=False):
        author, author_rows = _author(rng, pools, _name(int(p)), config)
        authors.append(author)
        rows += author_rows
    return authors, rows


def split_authors(n_authors: int, percent: int) -> int | None:
    """The number of authors in ``forget{percent}``: ``percent`` of them, rounded.

    Args:
        n_authors: all authors.
        percent: the forget percentage.

    Returns:
        The count, or None when the rounding leaves no whole author (or all of them).
    """
    count = int(np.floor(n_authors * percent / 100 + 0.5))
    return count if 0 < count < n_authors else None
