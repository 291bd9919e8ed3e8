"""Container ids and names, the way Docker makes and accepts them.

An id is 64 random hex digits; people use its first 12 (the short id) or any
unique prefix. A name is either given (`--name`, checked against Docker's
pattern) or generated as `adjective_surname` like Docker's `focused_benz`.
Uniqueness is not decided here: the container store checks names under its
lock, this module only proposes candidates.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from pyctr.errors import UsageError

if TYPE_CHECKING:  # random costs ~5 ms to import; only `create` needs it
    import random

ID_HEX_LEN = 64
SHORT_ID_LEN = 12
# Docker's restrictedNamePattern; a leading "/" is how the API spells names.
_NAME_PATTERN = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_HEX = re.compile(r"^[0-9a-f]+$")

ADJECTIVES = (
    "admiring adoring affectionate agitated amazing angry awesome beautiful blissful bold boring brave busy "
    "charming clever compassionate competent condescending confident cool cranky crazy dazzling determined "
    "distracted dreamy eager ecstatic elastic elated elegant eloquent epic exciting fervent festive flamboyant "
    "focused friendly frosty funny gallant gifted goofy gracious great happy hardcore heuristic hopeful hungry "
    "infallible inspiring intelligent interesting jolly jovial keen kind laughing loving lucid magical modest "
    "musing mystifying naughty nervous nice nifty nostalgic objective optimistic peaceful pedantic pensive "
    "practical priceless quirky quizzical recursing relaxed reverent romantic sad serene sharp silly sleepy "
    "stoic strange stupefied suspicious sweet tender thirsty trusting unruffled upbeat vibrant vigilant "
    "vigorous wizardly wonderful xenodochial youthful zealous zen"
).split()

# Scientists, engineers and hackers, as in Docker's list (which this is not a copy of).
SURNAMES = (
    "agnesi albattani allen almeida antonelli archimedes ardinghelli aryabhata austin babbage banach banzai "
    "bardeen bartik bassi beaver bell benz bhabha bhaskara black blackburn blackwell bohr booth borg bose "
    "bouman boyd brahmagupta brattain brown buck burnell cannon carson cartwright carver cerf chandrasekhar "
    "chaplygin chatelet chatterjee chaum chebyshev clarke cohen colden cori cray curie curran darwin davinci "
    "dewdney dhawan diffie dijkstra dirac driscoll dubinsky easley edison einstein elbakyan elgamal elion "
    "ellis engelbart euclid euler faraday feistel fermat fermi feynman franklin gagarin galileo galois "
    "ganguly gates gauss germain goldberg goldstine goldwasser golick goodall gould greider grothendieck "
    "haibt hamilton haslett hawking heisenberg hellman hermann herschel hertz heyrovsky hodgkin hofstadter "
    "hoover hopper hugle hypatia ishizaka jackson jang jemison jennings jepsen johnson joliot jones kalam "
    "kapitsa kare keldysh keller kepler khayyam khorana kilby kirch knuth kowalevski lalande lamarr lamport "
    "leakey leavitt lederberg lehmann lewin lichterman liskov lovelace lumiere mahavira margulis matsumoto "
    "maxwell mayer mccarthy mcclintock mclaren mclean mcnulty meitner mendel mendeleev meninsky merkle "
    "mestorf mirzakhani montalcini moore morse moser murdock napier nash neumann newton nightingale nobel "
    "noether northcutt noyce panini pare pascal pasteur payne perlman pike poincare poitras proskuriakova "
    "ptolemy raman ramanujan rhodes ride ritchie robinson roentgen rosalind rubin saha sammet sanderson "
    "satoshi shamir shannon shaw shirley shockley shtern sinoussi snyder solomon spence stonebraker "
    "sutherland swanson swartz swirles taussig tereshkova tesla tharp thompson torvalds tu turing varahamihira "
    "vaughan villani visvesvaraya volhard wescoff wilbur wiles williams williamson wilson wing wozniak wright "
    "wu yalow yonath zhukovsky"
).split()


def new_id() -> str:
    """A fresh 64-hex container id (256 random bits: collisions are not a concern)."""
    return os.urandom(ID_HEX_LEN // 2).hex()


def short_id(container_id: str) -> str:
    return container_id[:SHORT_ID_LEN]


def looks_like_id_prefix(text: str) -> bool:
    return 0 < len(text) <= ID_HEX_LEN and bool(_HEX.match(text))


def validate_name(name: str) -> str:
    """Return the name without Docker's leading "/", or raise UsageError as Docker words it."""
    if not _NAME_PATTERN.match(name):
        raise UsageError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def _system_random() -> random.Random:
    import random

    return random.SystemRandom()


def random_name(rng: random.Random | None = None) -> str:
    """One `adjective_surname` candidate; Docker never says a Wozniak is boring, neither do we."""
    rng = rng or _system_random()
    while True:
        name = f"{rng.choice(ADJECTIVES)}_{rng.choice(SURNAMES)}"
        if name != "boring_wozniak":
            return name


def pick_name(taken: Callable[[str], bool] | Iterable[str], rng: random.Random | None = None) -> str:
    """A generated name not in `taken`; after a few collisions a digit is appended, as Docker does."""
    is_taken = taken if callable(taken) else set(taken).__contains__
    rng = rng or _system_random()
    for attempt in range(100):
        name = random_name(rng)
        if attempt >= 3:
            name = f"{name}{rng.randint(0, 9)}"
        if not is_taken(name):
            return name
    while True:  # practically unreachable: ~20,000 names x 10 digits
        name = f"{random_name(rng)}{rng.randint(10, 10**6)}"
        if not is_taken(name):
            return name


def is_valid_name(name: str) -> bool:
    """Whether `name` matches Docker's container name pattern (no error raised: for lookups)."""
    return bool(_NAME_PATTERN.match(name))
