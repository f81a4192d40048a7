# ruff: noqa: RUF001, E501 (look-alike letters and long patterns are the point here)
"""The rules: patterns over normalised text (lower case, accent-free; see ``_normalise``).

One list per kind. English patterns are precise (a verb and what it acts on); the other
languages' (French, German, Spanish, Italian, Portuguese, Dutch, Turkish, Russian, Chinese,
Arabic, Persian) name the same acts: leave aside the instructions, ask for the system prompt,
take on a persona without rules. They are written accent-free, as ``normalise`` leaves text.
"""

from __future__ import annotations

import re

OVERRIDE = "override"
EXTRACTION = "instruction_extraction"
ROLEPLAY = "roleplay"
ROLE_MARKER = "role_marker"
TOOL_LURE = "tool_lure"
EXFILTRATION = "exfiltration"

_S = r"[^.!?\n]"  # within one sentence

_INSTRUCTIONS = (
    r"(?:instructions?|prompts?|rules|directions|directives|guidelines|guardrails|"
    r"system (?:prompt|message)|constraints|programming|context|orders|commands|guidance|"
    r"restrictions|policies|protocols|parameters|principles|safeguards|filters|training)"
)
_QUALIFIER = (
    r"(?:(?:all|any|the|your|my|of|previous|prior|above|earlier|preceding|foregoing|"
    r"original|initial|existing|current|these|those|system|safety|developer|old|every|"
    r"other|and|following|standard|default|usual|ethical|content|given|set|operational|"
    r"built-in|core|programmed|preset|pre-set|internal)\s+){0,5}"
)
_EN_VERB = (
    r"(?:ignore|disregard|forget|skip|bypass|override|overrule|drop|abandon|neglect|discard|"
    r"dismiss|cancel|erase|circumvent|suspend|deactivate|disable|evade|contravene|"
    r"set aside|put aside|pay no (?:attention|heed) to|throw out|break free (?:of|from))"
)
# Other languages: a verb of setting aside, then (within a sentence) what it sets aside; or the
# other way round (German, Turkish and Persian put the verb last).
_ML_VERB = (
    r"(?:ignore[rz]?|oublie[rz]?|neglige[rz]?|outrepasse[rz]?|contourne[rz]?|annule[rz]?|"
    r"efface[rz]?|ne tiens? (?:plus |pas )?compte|fais abstraction|abandonne[rz]?|"
    r"desobei[rs]|enfreins|transgresse|"
    r"ignorier\w*|vergiss|vergessen sie|missacht\w*|uberspring\w*|umgeh\w*|verwirf|"
    r"hebe?\w* \w+ auf|setze?\w* \w+ (?:\w+ )?(?:aus|ausser kraft)|widersetz\w*|brich|"
    r"ignora\w*|olvid\w*|omit\w*|descart\w*|pasa por alto|anula\w*|desobedec\w*|salta\w*|"
    r"dimentica\w*|trascura\w*|scarta\w*|annulla\w*|non considerare|bypassa\w*|"
    r"esquec\w*|desconsider\w*|anule|desobedeca|"
    r"negeer\w*|vergeet|"
    r"игнорир\w*|проигнорир\w*|забудь\w*|забудьте|отмени\w*|не обращай\w*|"
    r"忽略|无视|忘记|忘掉|不要理会|忽视|"
    r"تجاهل|انس|"
    r"نادیده بگیر)"
)
_ML_OBJECT = (
    r"(?:instructions?|consignes?|regles|directives?|parametres|ordres|programmation|"
    r"restrictions?|limites|contraintes|lignes directrices|politiques?|principes|"
    r"anweisung\w*|befehl\w*|regeln|richtlinien|vorgaben|anordnung\w*|einschrankung\w*|"
    r"programmierung|direktive\w*|grundsatze|prinzipien|betriebsprinzipien|"
    r"instrucciones|reglas|directrices|directivas|normas|ordenes|indicaciones|"
    r"restricciones|pautas|programacion|limitaciones|parametros|principios|"
    r"istruzioni|regole|direttive|linee guida|restrizioni|vincoli|programmazione|"
    r"parametri|principi|instrucoes|regras|diretrizes|restricoes|programacao|"
    r"instructies|regels|richtlijnen|"
    r"talimat\w*|kural\w*|yonerge\w*|kisitlama\w*|sistem mesaj\w*|sistem istem\w*|"
    r"guvenlik politika\w*|"
    r"инструкци\w*|правил\w*|указани\w*|ограничени\w*|промпт\w*|"
    r"指令|指示|规则|提示|说明|设定|限制|"
    r"تعليمات|التعليمات|"
    r"دستورالعمل\w*|دستورات)"
)
_ML_VERB_LAST = (
    r"(?:unut\w*|yok say\w*|gormezden gel\w*|gecersiz (?:say|kil)\w*|iptal\w*|atla|dikkate alma)"
)

OVERRIDE_PATTERNS = [
    re.compile(rf"\b{_EN_VERB}\s+{_QUALIFIER}{_INSTRUCTIONS}\b"),
    re.compile(
        rf"\b{_EN_VERB}\b{_S}{{0,40}}\b(?:instructions|rules|guidelines|restrictions|programming|directives)\b{_S}{{0,30}}\b(?:you|given|above|before|earlier|previous|prior)\b"
    ),
    re.compile(r"\bforget (?:everything|all|what)\b(?: (?:you|that|above|before|i|we))?"),
    re.compile(
        rf"\b(?:do not|don't|stop|no longer) (?:follow(?:ing)?|obey(?:ing)?|adher\w+ to|comply(?:ing)? with) {_QUALIFIER}{_INSTRUCTIONS}"
    ),
    re.compile(
        r"\byou are (?:now|no longer)\b.{0,40}\b(?:dan|unrestricted|jailbroken|"
        r"without (?:any )?(?:rules|restrictions|limits|filters)|an? (?:ai|assistant|model) "
        r"(?:that|who|with))"
    ),
    re.compile(
        r"\b(?:new|updated|real|actual|true|revised|override) (?:system )?(?:instructions?|directives?|task|orders)\s*:"
    ),
    re.compile(r"\bfrom now on,? (?:you|ignore|respond|answer|act|only|your|i)\b"),
    re.compile(
        rf"\b(?:instructions|rules|guidelines|restrictions|directives){_S}{{0,30}}\b(?:no longer apply|are (?:void|cancel+ed|revoked|lifted|suspended|withdrawn|overridden)|have been (?:lifted|revoked|withdrawn|updated|changed|removed))"
    ),
    re.compile(
        r"\b(?:ignore|disregard)(?: the)? (?:above|previous|prior|preceding|foregoing|rest)(?: of (?:this|the) \w+)?(?=\s*(?:[.,;:!]|and\b|$|instructions|directions|text|data|prompt|context|input|content))"
    ),
    re.compile(r"\b(?:ignore|disregard) (?:any|all|everything)\b"),
    re.compile(
        r"\b(?:instead|rather),? (?:just )?(?:print|say|output|write|respond with|reply with)\b"
    ),
    re.compile(r"\b(?:just|only|simply) (?:print|say|output|respond with|reply with)\s*[\"'<:]"),
    re.compile(
        r"\b(?:print|say|output|respond with|reply with) (?:only )?\"?(?:i have been pwned|pwned|haha pwned)"
    ),
    re.compile(r"\bi have been pwned\b"),
    re.compile(r"\bstop everything\b"),
    re.compile(r"\b(?:nevermind|never mind)\.? (?:ignore|forget|disregard)\b"),
    re.compile(
        r"\b(?:override|bypass|disable|turn off|deactivate|remove|lift) (?:your |all |the |any )*(?:safety|content|security|ethical|moral)? ?(?:filters?|guardrails|safeguards|restrictions|limitations|censorship|alignment)\b"
    ),
    re.compile(rf"\b{_ML_VERB}\b{_S}{{0,50}}{_ML_OBJECT}"),
    re.compile(rf"{_ML_OBJECT}{_S}{{0,40}}{_ML_VERB_LAST}"),
    re.compile(
        r"(?:忽略|无视|忘记|忘掉|忽视)[^。！？]{0,12}(?:之前|以前|先前|上面|上述|所有|全部|的)[^。！？]{0,12}(?:指令|指示|规则|提示|说明|设定)"
    ),
    re.compile(
        r"\b(?:a partir de maintenant|desormais|d'ora in poi|a partir de ahora|ab (?:jetzt|sofort)|von nun an|a partir de agora|bundan (?:sonra|boyle)|отныне|с этого момента)\b"
    ),
]
EXTRACTION_PATTERNS = [
    re.compile(
        r"\b(?:reveal|print|show|repeat|output|leak|display|tell|give|share|recite|spell out|"
        r"write (?:out|down)|dump|expose|disclose|return|provide|paste|list|summari[sz]e|"
        r"translate|encode|copy|what (?:are|were|is|was)|read (?:back|out))\b"
        r"(?: me| us)?(?: all| back)?(?: of)? (?:your|the|its|my) (?:hidden |secret |full |"
        r"original |initial |entire |complete |exact |first |starting |underlying |internal |"
        r"confidential |current |verbatim |pre-?|very first |system )*(?:system ?prompt|"
        r"instructions|system message|system instructions|initial prompt|prompt|directives?|"
        r"configuration|guidelines|rules you|programming|commands?|pre-?prompt|context window|"
        r"initialization|setup|orders|guidance)\b"
    ),
    re.compile(
        r"\b(?:your|the) (?:system ?prompt|system message|initial instructions|original instructions|hidden instructions|secret instructions|starting instructions|pre-?prompt)\b"
    ),
    re.compile(r"\bsystemprompt\b|\bsystem_prompt\b"),
    re.compile(
        r"\b(?:instructions|rules|guidelines|prompt|directives)(?: that)? you (?:were|have been|are) (?:given|told|programmed|provided|trained)"
    ),
    re.compile(r"\bwhat (?:were|are|have) you (?:been )?(?:told|instructed|programmed|prompted)\b"),
    re.compile(
        r"\b(?:everything|the text|all the text|words?|text) (?:above|before) (?:this|my)\b"
    ),
    re.compile(r"\b(?:my|your) instructions are:|\bi was instructed to\b|\bthe system prompt is\b"),
    re.compile(r"\b(?:output|print|show|repeat) (?:the )?(?:text|everything|words) above\b"),
    re.compile(r"\binitiali[sz]ation (?:string|prompt|text)\b"),
    re.compile(
        r"\b(?:spell[ -]?check|translate|repeat|print) the (?:previous|above|prior) instructions\b"
    ),
    re.compile(
        r"\b(?:prompt (?:systeme|initial|d'origine|original)|(?:instructions?|consignes?|"
        r"directives?) (?:initiales?|originales?|d'origine|systeme|cachees?|secretes?|de depart|"
        r"internes?)|directive (?:originale|initiale|fondamentale)|commande initiale|"
        r"system-?(?:prompt|anweisung\w*|eingabeaufforderung|nachricht)|"
        r"(?:ursprungliche|anfangliche|initiale|versteckte|geheime|interne|erste) "
        r"(?:anweisung|direktive|eingabe|befehl|programmierung|konfiguration)\w*|"
        r"prompt del sistema|(?:instrucciones|directivas|directrices|indicaciones) "
        r"(?:iniciales|originales|del sistema|ocultas|secretas|internas)|directiva original|"
        r"mensaje del sistema|comando inicial|prompt di sistema|(?:istruzioni|direttive) "
        r"(?:iniziali|originali|di sistema|nascoste|segrete|interne)|direttiva originale|"
        r"messaggio di sistema|prompt do sistema|(?:instrucoes|diretrizes) (?:iniciais|"
        r"originais|do sistema|ocultas|secretas|internas)|diretriz original|mensagem do "
        r"sistema|sistem (?:istem|mesaj|talimat|komut)\w*|gizli (?:talimat|komut|yonerge)\w*|"
        r"ic (?:talimat|yonerge)\w*|ilk (?:talimat|komut)\w*|"
        r"системн\w* (?:промпт|подсказк\w*|инструкци\w*|сообщени\w*)|"
        r"(?:исходн|скрыт|первоначальн)\w* (?:инструкци|указани|промпт)\w*|"
        r"系统提示|系统指令|初始指令|原始指令|隐藏指令|系统消息|"
        r"موجه النظام|تعليمات النظام|"
        r"دستورالعمل\w* سیستم|پرامپت سیستم)"
    ),
]
ROLEPLAY_PATTERNS = [
    re.compile(
        r"\b(?:dan|stan|dude|aim|evil|developer|god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|opposite|chaos|dev|debug|maintenance|admin|sudo|root|expert|unlocked|anti-?dan) mode\b"
    ),
    re.compile(
        r"\bmode (?:developpeur|sans (?:restriction|limite|filtre|censure)|dan|debug|administrateur|dieu)\b|\b(?:entwickler|admin|debug|gott)modus\b|\bmodo (?:desarrollador|sviluppatore|desenvolvedor|sin restricciones|sem restricoes|senza restrizioni|dios|dan)\b|\b(?:gelistirici|dan|yonetici|tanri) mod\w*|режим разработчика|开发者模式"
    ),
    re.compile(
        r"\bdo anything now\b|\bdan,? (?:which|who) stands\b|\b(?:stay|remain|break) (?:in|out of) character\b"
    ),
    re.compile(
        r"\b(?:you are|you're|you will be|you'll be|you are going to|you are about to|act as|pretend (?:to be|you are|you're)|role-?play as|imagine you are|behave as|become|simulate|emulate)\b.{0,60}\b(?:unrestricted|unfiltered|uncensored|jailbroken|amoral|unethical|evil|without (?:any )?(?:rules|restrictions|limits|limitations|filters|morals|ethics|censorship|guidelines)|no (?:rules|restrictions|limits|limitations|filters|morals|ethics|censorship|guidelines)|free (?:of|from) (?:rules|restrictions|limitations|constraints))"
    ),
    re.compile(
        rf"\b(?:you|respond|answer|reply|ai|assistant|model|chatbot|persona|character)\b{_S}{{0,60}}\b(?:without|with no|no) (?:any )?(?:restrictions|limits|limitations|filters|rules|censorship|guidelines|ethical|moral|safety)\b"
    ),
    re.compile(
        r"\bimmerse yourself (?:into|in) the role\b|\b(?:new|alter) (?:persona|ego)\b|\bact as (?:an? )?(?:unrestricted|unfiltered|jailbroken|evil|uncensored)\b|\bpretend (?:that )?you (?:have no|are not bound|don't have)\b|\bhypothetical (?:ai|model|assistant) (?:with|without|that)\b|\bbroken free\b|\bno longer bound\b|\bnot bound by\b"
    ),
    re.compile(
        rf"\b(?:tu es|vous etes|du bist|sie sind|eres|ahora eres|sei|ora sei|voce e|agora voce e|sen)\b{_S}{{0,50}}\b(?:sans (?:aucune )?(?:restriction|limite|regle|filtre|censure)|ohne (?:jegliche |jede |alle )?(?:einschrankung|regel|filter|zensur|beschrankung|grenzen)|sin (?:ninguna )?(?:restriccion|limite|regla|filtro|censura)|senza (?:alcuna )?(?:restrizion|limit|regol|filtr|censur)|sem (?:nenhuma )?(?:restric|limit|regra|filtro|censura)|kural tanimayan|filtresiz|sansursuz|sinirsiz|kisitlamasi olmayan)"
    ),
    re.compile(
        r"\b(?:kural tanimayan|kisitlamasi olmayan|filtresiz|sansursuz|sinirsiz)\b|без (?:каких-либо )?(?:ограничений|правил|фильтров|цензуры)|(?:没有任何|不受|无)(?:限制|规则|约束)"
    ),
    re.compile(
        r"\b(?:theo|now you|you) (?:act|answer|respond) as (?:both|two)\b|\btwo (?:responses|personalities|personas)\b|\b(?:\[|\()?(?:🔒|🔓|classic|jailbreak)(?:\]|\))? (?:response|output)\b"
    ),
]
ROLE_MARKER_PATTERNS = [
    re.compile(
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|"
        r"start_header_id|end_header_id|eot_id)\|>"
    ),
    re.compile(r"\[/?inst\]|<</?sys>>|</?s>\s*\[inst"),
    re.compile(
        r"(?:^|\n)\s*(?:#{1,6}\s*|\*\*|\[|<)?\s*(?:system|assistant|developer)"
        r"(?: prompt| message| override)?\s*(?:\]|>|\*\*)?\s*:\s*\S",
        re.MULTILINE,
    ),
    re.compile(r"</?(?:system|system_prompt|instructions|instruction)>|\[system\]|\[admin request"),
    re.compile(r"[\"']role[\"']\s*:\s*[\"'](?:system|developer)[\"']"),
    re.compile(r"\b(?:begin|end) (?:system|admin) (?:prompt|message|instructions)\b"),
    re.compile(r"<end of session>|\bend of (?:session|conversation|prompt)\s*[-=*]{3,}"),
    re.compile(r"(?:^|\n)\s*(?:user|human)\s*:\s*\S.*\n\s*(?:assistant|ai|bot)\s*:", re.MULTILINE),
    re.compile(r"(?:^|\n)\s*(?:assistant|ai)\s*:\s*\[[^\]]{0,40}\]\s*\n\s*user\s*:", re.MULTILINE),
    re.compile(r"\b(?:sistem|systeme|система)\s*:\s*\S"),
]
TOOL_PATTERNS = [
    re.compile(
        r"\b(?:call|invoke|use|run|trigger|execute) (?:the )?[a-z_][a-z0-9_.]{2,40} "
        r"(?:tool|function|plugin|action)\b(?! in\b)"
    ),
    re.compile(
        r"\b(?:call|invoke|trigger) (?:the |a )?(?:tool|function|plugin)s? "
        r"(?:named |called )?[`'\"]?[a-z_][a-z0-9_]{2,40}"
    ),
    re.compile(r"[\"'](?:tool_calls?|function_call|tool_use|tool_name)[\"']\s*:"),
    re.compile(
        r"\b(?:send|forward|email|post|upload|transmit|exfiltrate|leak) "
        r"(?:all |every |the |this |your |my )*(?:conversation|chat|history|data|"
        r"documents?|files?|emails?|passwords?|credentials?|secrets?|api keys?|tokens?|"
        r"context|messages?|prompt)s?\b.{0,40}\bto\s+(?:https?://|[\w.+-]+@|the (?:url|address|"
        r"server|endpoint|webhook)|this (?:url|address|server|endpoint|webhook)|attacker)"
    ),
    re.compile(
        r"\b(?:execute|run) (?:the following|this) (?:shell |bash |terminal )?"
        r"(?:command|code|script)s?\b"
    ),
    re.compile(
        r"\b(?:rm -rf /|curl\s+-[a-z]*\s*https?://|wget\s+https?://|"
        r"powershell\s+-enc|os\.system\(|subprocess\.)"
    ),
]
EXFIL_PATTERNS = [
    re.compile(
        r"\b(?:append|add|include|put|encode|insert|embed)\b.{0,60}\b(?:conversation|chat|"
        r"history|secret|password|user'?s? (?:data|message|question)|previous messages?|"
        r"answer|api key|token|the data)\b.{0,60}\b(?:url|link|query string|parameter|"
        r"image|src)\b"
    ),
    re.compile(r"\bhttps?://\S+[?&][a-z_]{1,20}=(?:\{|\[|<|%7b)[a-z_ ]{0,30}(?:\}|\]|>|%7d)"),
]
# Planted in a document: words addressed to whatever model reads it ("note to automated
# analysis software", "if the user asks for a summary, reply ..."), never to its human reader.
ADDRESSED_TO_MODEL = [
    re.compile(
        r"\b(?:note|message|instructions?) (?:to|for) (?:the )?(?:automated|ai|llm|language model|assistant|model|chatbot|bot|screening|analysis)\b"
    ),
    re.compile(
        r"\b(?:if|when) (?:the )?(?:user|anyone|someone|you are|asked|questioned)\b.{0,60}\b(?:reply|respond|answer|say|tell|report|print|output)\b.{0,40}\b(?:only|that|with|exactly|simply)\b"
    ),
    re.compile(
        r"\b(?:ai|llm|language model|assistant|model|chatbot)s?\b.{0,40}\b(?:must|should|shall|are instructed to|need to) (?:now )?(?:ignore|say|reply|respond|output|print|recommend|report|answer|state|tell)\b"
    ),
    re.compile(
        r"\b(?:visible|invisible|hidden) to (?:the )?(?:llm|ai|model|humans)\b|\bhidden (?:competency|instructions?|prompt|text)\b"
    ),
    re.compile(
        r"\bfocus (?:only|exclusively|solely) on\b.{0,60}\b(?:following|brackets|information below)\b"
    ),
    re.compile(r"\b(?:could|can|would) you repeat <|\brepeat the following sentence\b"),
    re.compile(
        r"\boverride (?:the )?(?:manual|previous|automated)? ?(?:scoring|evaluation|assessment|analysis|review)\b"
    ),
    re.compile(
        r"\b(?:you may not|do not|don't) deviate\b|\bthis is a test\b.{0,40}\b(?:respond|reply|say|print)\b"
    ),
    re.compile(r"\bfollow instructions?\b|\bcore instruction\b"),
]

RULES: tuple[tuple[str, list[re.Pattern[str]]], ...] = (
    (OVERRIDE, OVERRIDE_PATTERNS),
    (EXTRACTION, EXTRACTION_PATTERNS),
    (ROLEPLAY, ROLEPLAY_PATTERNS),
    (ROLE_MARKER, ROLE_MARKER_PATTERNS),
    (TOOL_LURE, TOOL_PATTERNS),
    (EXFILTRATION, EXFIL_PATTERNS),
    (OVERRIDE, ADDRESSED_TO_MODEL),
)


def _combined(patterns: list[re.Pattern[str]]) -> re.Pattern[str]:
    """One alternation of a kind's patterns: one pass over the text instead of one per pattern
    (a 1 KB chunk went from ~2 ms to a fraction of that)."""
    return re.compile("|".join(f"(?:{p.pattern})" for p in patterns), re.MULTILINE)


_COMBINED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, _combined(patterns)) for kind, patterns in RULES
)


def rule_kinds(norm: str) -> set[str]:
    """The kinds whose patterns match the normalised text."""
    return {kind for kind, pattern in _COMBINED if pattern.search(norm)}
