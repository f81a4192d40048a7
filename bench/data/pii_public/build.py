"""Regenerate ``sentences.json.gz``: labelled PII sentences from presidio-evaluator's templates.

The toolkit (``presidio-evaluator`` 0.3.2, MIT, by Presidio's authors) generates evaluation
sentences from its own templates, a list of 3,000 fake people from FakeNameGenerator.com, its own
phone, address and age formats, and Faker. This script does what its ``PresidioSentenceFaker``
does, reading those files straight from the wheel (nothing of the toolkit is imported: it pulls
pandas, tqdm, requests and plotting libraries), with a fixed seed:

* a template is drawn at random; the placeholders of one sentence take their values from one
  person of the list where that person has the field (the first occurrence only), from Faker
  (``en_US``) with the toolkit's extra providers otherwise;
* a person's full name carries their middle initial one time in five (``"Marie J Hamanova"`` or
  ``"Marie J. Hamanova"``), as in the toolkit;
* one sentence in twenty is lower-cased, as the toolkit's ``lower_case_ratio=0.05``;
* spans are labelled with the toolkit's entity mapping (``PresidioSentenceFaker.ENTITY_TYPE_
  MAPPING``, read from its source), except that the toolkit's ``GPE`` is called ``LOCATION``
  (Presidio's name for it) and its ``DOMAIN_NAME`` (a URL) ``URL``.

Two departures, both so that the text is what a person would type: the two-character ``\\n`` in the
template file becomes a newline, and ``<``/``>`` are left alone (the toolkit turns them into
placeholder braces, which breaks its own e-mail-quote templates ``>{{name}}``).

    pip download --no-deps -d /tmp/pe presidio-evaluator==0.3.2
    python bench/data/pii_public/build.py --wheel /tmp/pe/presidio_evaluator-0.3.2-py3-none-any.whl

Needs Faker and PyYAML (both in the dev environment). Deterministic for a Faker version
(``--check`` rebuilds in memory and compares): the sentences are stored, so that the benchmark
does not depend on the installed Faker.
"""

from __future__ import annotations

import argparse
import ast
import csv
import gzip
import hashlib
import io
import json
import random
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

SEED = 20261207
COUNT = 1500
LOWER_CASE_RATIO = 0.05
RAW = "presidio_evaluator/data_generator/raw_data/"
MEMBERS = {
    "templates": RAW + "templates.txt",
    "people": RAW + "FakeNameGenerator.com_3000.csv",
    "organizations": RAW + "companies_and_organizations.csv",
    "nationalities": RAW + "nationalities.csv",
    "licences": RAW + "us_driver_license_format.yaml",
    "providers": "presidio_evaluator/data_generator/faker_extensions/providers.py",
    "faker": "presidio_evaluator/data_generator/presidio_sentence_faker.py",
}
WHEEL_SHA256 = "57614fe604e52b78e6de25b767c59265886b93bbcdc6c7e43ab2657d3f6302be"
EPOCH, END = datetime(1970, 1, 1), datetime(2026, 1, 1)
RENAMED_TYPES = {"GPE": "LOCATION", "DOMAIN_NAME": "URL"}
OUT = Path(__file__).resolve().parent / "sentences.json.gz"
_TOKEN = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def _class_constant(source: str, class_name: str, attribute: str) -> Any:
    """A literal class attribute of the toolkit's source (an ``OrderedDict((...))`` is read as
    its list of pairs)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for statement in node.body:
                if (
                    isinstance(statement, ast.Assign)
                    and isinstance(statement.targets[0], ast.Name)
                    and statement.targets[0].id == attribute
                ):
                    value = statement.value
                    if isinstance(value, ast.Call):  # OrderedDict(<literal>)
                        value = value.args[0]
                    return ast.literal_eval(value)
    raise SystemExit(f"{class_name}.{attribute} not found in the toolkit's source")


def _people(raw: str, rng: random.Random) -> list[dict[str, str]]:
    """The toolkit's ``load_fake_person_df``: FakeNameGenerator's columns under Faker's names."""
    renamed = {
        "GivenName": "first_name",
        "MiddleInitial": "middle_initial",
        "Surname": "last_name",
        "StreetAddress": "street_name",
        "City": "city",
        "State": "state_abbr",
        "StateFull": "state",
        "ZipCode": "zipcode",
        "CountryFull": "country",
        "NameSet": "nationality",
        "Title": "prefix",
        "EmailAddress": "email",
        "TelephoneNumber": "phone_number",
        "Birthday": "date_of_birth",
        "Age": "age",
        "Occupation": "job",
        "Company": "company",
        "Domain": "domain_name",
        "Username": "user_name",
        "Gender": "gender",
    }
    people = []
    for row in csv.DictReader(io.StringIO(raw.lstrip("\ufeff"))):
        person = {new: (row.get(old) or "").strip() for old, new in renamed.items()}
        if rng.random() > 0.2:
            full = f"{person['first_name']} {person['last_name']}"
        else:
            gap = " " if rng.random() > 0.5 else ". "
            full = f"{person['first_name']} {person['middle_initial']}{gap}{person['last_name']}"
        person["person"] = person["name"] = full
        for gender in ("female", "male"):
            mine = person["gender"] == gender
            for field in ("first_name", "prefix", "last_name"):
                person[f"{field}_{gender}"] = person[field] if mine else ""
        people.append(person)
    return people


def build(wheel: Path) -> bytes:
    if hashlib.sha256(wheel.read_bytes()).hexdigest() != WHEEL_SHA256:
        raise SystemExit(f"{wheel} is not presidio-evaluator 0.3.2 as checked")
    import yaml
    from faker import Faker
    from faker.providers import BaseProvider
    from faker.providers.address.en_US import Provider as AddressProvider
    from faker.providers.phone_number.en_US import Provider as PhoneProvider

    with zipfile.ZipFile(wheel) as archive:
        files = {key: archive.read(name).decode("utf-8") for key, name in MEMBERS.items()}
    rng = random.Random(SEED)
    templates = [line.strip() for line in files["templates"].splitlines() if line.strip()]
    people = _people(files["people"], rng)
    mapping: dict[str, str] = _class_constant(
        files["faker"], "PresidioSentenceFaker", "ENTITY_TYPE_MAPPING"
    )
    # (provider, alias) pairs: the template's alias is the provider's other name.
    aliases = {
        alias: provider
        for provider, alias in _class_constant(
            files["faker"], "PresidioSentenceFaker", "PROVIDER_ALIASES"
        )
    }
    address_formats = OrderedDict(
        _class_constant(files["providers"], "AddressProviderNew", "address_formats")
    )
    phone_formats = _class_constant(files["providers"], "PhoneNumberProviderNew", "formats")
    age_formats = OrderedDict(_class_constant(files["providers"], "AgeProvider", "formats"))
    organizations = [
        line.strip() for line in files["organizations"].splitlines()[1:] if line.strip()
    ]
    nationalities = list(csv.DictReader(io.StringIO(files["nationalities"].lstrip("\ufeff"))))
    licences = yaml.safe_load(files["licences"])["en"]["faker"]["driving_license"]["usa"]

    fake = Faker("en_US")
    fake.seed_instance(SEED)

    class ToolkitAddresses(AddressProvider):
        pass

    ToolkitAddresses.address_formats = address_formats

    class ToolkitPhones(PhoneProvider):
        formats = tuple(phone_formats)

    fake.add_provider(ToolkitAddresses)
    fake.add_provider(ToolkitPhones)

    class Extras(BaseProvider):
        def age(self) -> str:
            return str(
                self.numerify(self.random_elements(age_formats, length=1, use_weighting=True)[0])
            )

    fake.add_provider(Extras)
    extra: dict[str, Callable[[], str]] = {
        "organization": lambda: rng.choice(organizations),
        "nationality": lambda: rng.choice(nationalities)["nationality"],
        "nation_man": lambda: rng.choice(nationalities)["man"],
        "nation_woman": lambda: rng.choice(nationalities)["woman"],
        "nation_plural": lambda: rng.choice(nationalities)["plural"],
        "ip_address": lambda: fake.ipv4() if rng.random() < 0.8 else fake.ipv6(),
        "us_driver_license": lambda: fake.bothify(
            rng.choice(licences[rng.choice(sorted(licences))])
        ),
        "first_name_nonbinary": lambda: fake.first_name_nonbinary(),
        # Faker's dates run up to "now": pinned, so that a rebuild gives the same file.
        "date_time": lambda: str(fake.date_time_between(EPOCH, END)),
        "year": lambda: str(fake.date_time_between(EPOCH, END).year),
        "day_of_week": lambda: fake.date_time_between(EPOCH, END).strftime("%A"),
        "date_of_birth": lambda: str(fake.date_between(date(1930, 1, 1), date(2007, 12, 31))),
    }

    def faker_value(field: str) -> str:
        if field in extra:
            return extra[field]()
        return str(getattr(fake, aliases.get(field, field))())

    sentences = []
    for _ in range(COUNT):
        template_id = rng.randrange(len(templates))
        template = templates[template_id].replace("\\n", "\n")
        template = _TOKEN.sub(lambda m: "{{" + m.group(1).lower() + "}}", template)
        record = dict(rng.choice(people))
        text, spans, position = "", [], 0
        for match in _TOKEN.finditer(template):
            field = match.group(1)
            # The sentence's person first (each field once), Faker for the rest.
            value = record.pop(field) if record.get(field) else faker_value(field)
            text += template[position : match.start()]
            entity = mapping.get(field, field.upper())
            spans.append(
                {
                    "type": RENAMED_TYPES.get(entity, entity),
                    "start": len(text),
                    "end": len(text) + len(value),
                    "field": field,
                }
            )
            text += value
            position = match.end()
        text += template[position:]
        if rng.random() < LOWER_CASE_RATIO:
            text = text.lower()
        sentences.append({"template": template_id, "text": text, "spans": spans})
    import faker as faker_package

    data = {
        "source": "presidio-evaluator 0.3.2 (MIT): templates.txt, FakeNameGenerator.com_3000.csv "
        "and the toolkit's providers, generated by bench/data/pii_public/build.py",
        "faker": faker_package.VERSION,
        "seed": SEED,
        "sentences": sentences,
    }
    return gzip.compress(json.dumps(data, ensure_ascii=False).encode(), mtime=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", type=Path, required=True)
    parser.add_argument(
        "--check", action="store_true", help="rebuild in memory; fail if it differs from the file"
    )
    args = parser.parse_args()
    built = build(args.wheel)
    if args.check:
        same = OUT.read_bytes() == built
        print(OUT, "matches its rebuild" if same else "differs from its rebuild")
        raise SystemExit(0 if same else 1)
    OUT.write_bytes(built)
    print(OUT, len(built))


if __name__ == "__main__":
    main()
