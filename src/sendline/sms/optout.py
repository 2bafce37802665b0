"""Opt-out clause (R11) and inbound replies (R12).

Outgoing, `has_optout_clause`: does a body already tell the recipient how to stop?
Inbound, `classify_reply`: does a reply opt out, opt in, ask for help, or need a human?

R11 says Sendline appends a STOP clause when a message has none, and that detection must
not be fooled by a STOP that is not an instruction ("STOPover deals", "Stop by our
store"). A clause is therefore an *instruction to send a keyword*, found in two shapes:

* a sending verb in front of the keyword: "Reply STOP", "Txt STOP", "Envoyez STOP";
* the keyword followed by a connector and an action or a short code: "STOP to end",
  "STOP2END", "STOP=end", "STOP pour vous désabonner", "STOP au 36180" (the French
  operator style, where the short code says where to send it).

The two kinds of mistake cost differently. Missing a clause that is there only appends a
second one (a few characters, maybe an extra segment). Seeing a clause that is not there
sends a marketing message with no opt-out instruction, which carriers filter and
CTIA/TCPA practice forbids. So the patterns are strict: weak keywords (END, QUIT,
CANCEL, which also mean "cancel my appointment") count only with an opt-out action after
them, and a keyword inside a URL never counts.

Cost matters: the full pre-send check has to run 50,000 times a second on one core, so
one cheap pass finds every keyword (most bodies have one or none); only those
candidates get the heavier verb and connector patterns, each bounded to a few
characters around the keyword. Stdlib `re` is enough here (and is fully typed).
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

DEFAULT_CLAUSE = "Reply STOP to opt out"

# Matching runs on `body.lower()`. Finding the keywords is the hot path: sre tries every
# alternative at every position (about 5 µs per 160 characters), while one `str.find`
# per keyword stem is C-speed (about 0.05 µs each), so candidates are found with `find`
# and only they meet a regex, always anchored or bounded to a few characters.
_STEMS = ("stop", "unsub", "opt", "arret", "arrêt", "revoke", "end", "quit", "cancel")

# At a candidate: the whole keyword, not followed by a letter or a hyphenated word
# ("STOPover", "stopwatch", "stop-loss" fail; "STOP2END" passes), and not the visiting
# sense ("Text: stop by our store"). ARRET/ARRÊT is the Canadian French carrier keyword.
# END, QUIT and CANCEL also mean "cancel my appointment": they are "weak" and count only
# with an opt-out action after them; the others count as soon as a verb asks for them.
_KEYWORD_AT = re.compile(
    r"(?:(?P<strong>stop(?:[ ]?all)?(?!\s+(?:by|over|in|off)\b)"
    r"|unsubscribe|unsub|opt[ -]?out|arr[eê]t|revoke)"
    r"|end|quit|cancel)(?![^\W\d_]|-[^\W\d_])"
)

_QUOTES = "\"'“”‘’«»"
# Sending verbs, English and French ("Reply STOP", "Txt STOP", "Envoyez STOP").
_VERBS = frozenset(
    "reply respond text txt send sms msg message répondez repondez répondre repondre"
    " réponds reponds envoyez envoyer envoie tapez écrivez ecrivez".split()
)
# Words allowed between verb and keyword: "reply back with the word", "le mot-clé".
_FILLERS = frozenset("back with the word keyword le mot mot-clé mot-cle clé cle".split())
_GAP = " \t\n\xa0\u202f:" + _QUOTES  # between verb and keyword: "Reply: STOP", 'reply "STOP"'
_OPENERS = "([{*•-–—" + _QUOTES  # before the verb: "(reply STOP to unsub)"
_VERB_WINDOW = 48  # "reply back with the keyword « " is 30 characters

# What a keyword can be *for*. END/STOP/CANCEL also have a positional or transactional
# sense, refused by the lookaheads ("the bus stop to end of the line", "CANCEL to cancel
# your appointment"); "STOP to opt out at any time" must still count, so "at" is refused
# only after those three.
_ACTION = r"""
    (?:opt[\s-]?out|unsubscribe|unsub|quit|cease|(?:be\s+)?removed?
      |d[eé]sabonner|d[eé]sinscrire|arr[eê]ter|ne\s+plus\s+recevoir
      |(?:end|stop|cancel)(?!\s+(?:of|at|by|in|on)\b))
    (?![^\W\d_])
    (?!\s+(?:your|the|my|this|an?)\s+(?:appointment|order|booking|reservation|visit
        |delivery|payment|transfer|meeting|call|line|street|road|day|week|month)\b)
"""
_SHORT_CODE = r"\d{3,6}(?!\d)"  # "STOP au 36105", "STOP to 12345"

# Anchored right after a keyword: a connector, then an action or a short code.
_AFTER_KEYWORD = re.compile(
    rf"""
    [{_QUOTES}]?\s*
    (?:(?:sms\s+)?(?:to\b|2(?!\d)|=|pour\b|au\b)\s*   # "to", txt-speak "2", "=", French
        (?:{_SHORT_CODE}|(?:vous\s+)?{_ACTION})         # "pour vous désabonner"
      |sms\s+{_SHORT_CODE})                           # "STOP SMS 36180"
    """,
    re.VERBOSE,
)
# Separators that may sit between a URL and a keyword (French puts no-break spaces
# inside guillemets, so they count as space everywhere here).
_SPACES = (" ", "\n", "\t", "\xa0", "\u202f")


def has_optout_clause(body: str) -> bool:
    """True when `body` already instructs the reader to send an opt-out keyword."""
    text = body.lower()
    find = text.find
    for stem in _STEMS:
        if stem not in text:  # the usual case, and cheaper than a call to find()
            continue
        start = find(stem)
        while start >= 0:
            # A letter before rules out "nonstop", "weekend" without a function call.
            if not (start and text[start - 1].isalpha()) and _is_instruction_at(text, start):
                return True
            start = find(stem, start + 1)
    return False


def _is_instruction_at(text: str, start: int) -> bool:
    keyword = _KEYWORD_AT.match(text, start)
    if keyword is None:
        return False
    found = (keyword.group("strong") is not None and _verb_before(text, start)) or (
        _AFTER_KEYWORD.match(text, keyword.end()) is not None
    )
    # Checked last: only a would-be clause pays for it.
    return found and not _inside_url(text, start)


def _verb_before(text: str, start: int) -> bool:
    if not start or text[start - 1] not in _GAP:
        return False  # at the start, or glued to a digit or symbol
    head = text[max(0, start - _VERB_WINDOW) : start]
    while True:  # peel words off the end; rsplit(None, 1) copies only the last one
        parts = head.rstrip(_GAP).rsplit(None, 1)
        if not parts:
            return False
        if parts[-1] not in _FILLERS:
            return parts[-1].lstrip(_OPENERS) in _VERBS
        head = parts[0] if len(parts) == 2 else ""


def _inside_url(text: str, keyword_start: int) -> bool:
    # A keyword glued to a path or host ("https://ex.com/stop2end") is not an
    # instruction: look at the whitespace-delimited token in front of the keyword.
    if not keyword_start or text[keyword_start - 1].isspace():
        return False  # nothing glued in front: the common case, answered cheaply
    token_start = max(text.rfind(space, 0, keyword_start) for space in _SPACES)
    token = text[token_start + 1 : keyword_start]
    return "/" in token or "www." in token or "@" in token


class InvalidClause(ValueError):
    """An account's opt-out clause that does not tell how to opt out (R11). A ValueError
    so the rule core stays free of the domain errors; the shells map it by type."""


def clause_problem(clause: str, what: str = "opt-out clause") -> str | None:
    """Why `clause` cannot be an account's opt-out clause (or its HELP answer, `what`),
    or None when it can. The one rule, checked when the text is set and when it is used."""
    if not has_optout_clause(clause):
        return (
            f"{what} {clause!r} does not tell how to opt out: say which keyword to "
            f'send, e.g. "{DEFAULT_CLAUSE}" or "Text STOP to end"'
        )
    return None


def with_optout_clause(body: str, clause: str = DEFAULT_CLAUSE) -> str:
    """`body` with `clause` appended on its own line, unless it already has a clause.

    A body that already ends with `clause` is left alone too, so appending stays
    idempotent even for an account clause the detector does not recognise.
    """
    trimmed = body.rstrip()
    if has_optout_clause(body) or (clause.strip() and trimmed.endswith(clause.strip())):
        return body
    return f"{trimmed}\n{clause}" if trimmed else clause


# --- Inbound replies (R12) -------------------------------------------------------------
#
# A reply whose *whole* body is a keyword acts at once: carriers (CTIA handbook) and the
# TCPA expect STOP to be honoured without a human, and one confirmation is the only
# message allowed after it. Anything longer never acts automatically: "YES I'll come"
# is not an opt-in and "Can you stop by?" is not an opt-out. But since the FCC's 2024
# revocation rule, any *reasonable* way of saying "stop texting me" revokes consent, so
# free text that looks like one is flagged for a human (REVIEW). A false REVIEW costs
# someone a glance; a missed revocation is a violation. Review is deliberately loose,
# and never an automatic opt-out.


class ReplyAction(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    REVIEW = "review"
    NONE = "none"


# Normalized forms: case-folded, accents dropped, spaces and punctuation removed, so
# "Opt-out", "stop all", "«stop»", "ARRÊT!" all land here.
OPT_OUT_KEYWORDS: frozenset[str] = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke", "arret"}
)
OPT_IN_KEYWORDS: frozenset[str] = frozenset({"start", "unstop", "yes"})
HELP_KEYWORDS: frozenset[str] = frozenset({"help", "info", "aide"})
_KEYWORD_ACTIONS: dict[str, ReplyAction] = {
    **dict.fromkeys(HELP_KEYWORDS, ReplyAction.HELP),
    **dict.fromkeys(OPT_IN_KEYWORDS, ReplyAction.OPT_IN),
    **dict.fromkeys(OPT_OUT_KEYWORDS, ReplyAction.OPT_OUT),
}

# Longer than any keyword plus slack: a body with more letters than this cannot be one,
# and skipping the Unicode work for it keeps a 100 KB body cheap.
_MAX_KEYWORD_CHARS = 24
# People say "stop" early in a reply; reading further would only let a 100 KB body cost
# milliseconds on the inbound webhook.
_REVIEW_SCAN_CHARS = 1000
_NOT_ALNUM = re.compile(r"[\W_]+")
# Matches as soon as the body has more letters and digits than a keyword can: bounded
# work however long the body is (disjoint classes, so no backtracking blow-up).
_TOO_MANY_LETTERS = re.compile(rf"(?:[\W_]*+[^\W_]){{{_MAX_KEYWORD_CHARS + 1}}}")

# Free-text revocations, matched on the normalized text: lower case, no accents, words
# (letter runs or digit runs) joined by single spaces ("don't" -> "don t",
# "m'envoyer" -> "m envoyer").
_WORD = re.compile(r"[^\W\d_]+|\d+")
_MESSAGES = r"(?:text|messag|msg|sms|txt|contact|call|email|spam|send|notif|alert|promo)\w*"
_REVOCATION = re.compile(
    rf"""\b(?:
      un\s?sub?s?cri\w*|unsub|opt\s?out\w*|revoke\w*|stop\s?all   # unsubscribe, typos
      |(?:remove|take|delete|drop|erase|block)\s(?:me|us|my\s(?:number|name|info))\b
      |off\s(?:your|the|this|ur)\s(?:\w+\s)?list
      |(?:don\st|dont|do\snot|never|quit|cease|stop)\s(?:\w+\s)??{_MESSAGES}
      |no\smore\s(?:\w+\s)?{_MESSAGES}
      |leave\sme\salone|wrong\s(?:number|person)|not\sinterested
      |desabonn\w*|desinscri\w*|ne\s(?:\w+\s)?(?:veux|souhaite)\splus
      |ne\splus\s(?:recevoir|etre\scontacte)|(?:retirez|supprimez|enlevez|effacez)\smoi
    )\b""",
    re.VERBOSE,
)
# "stop" in free text is a revocation only near a word about us or the messages: "STOP
# please", "stop it", "arrêtez de m'envoyer..."; "Can you stop by at 5?" stays NONE.
_STOP_WORDS = frozenset({"stop", "arret", "arrete", "arretez", "arreter", "cessez", "halt"})
# END, CANCEL and QUIT are common words; only messaging words next to them count.
_WEAK_STOP_WORDS = frozenset({"end", "cancel", "quit"})
_NEAR_WORDS = frozenset(
    "me us it this please pls plz now immediately anymore number m moi svp stp plus".split()
)
_MESSAGE_WORD = re.compile(_MESSAGES + r"|envoy\w*|ecri\w*|texto\w*")
# "stop by / in / over" is a visit, not a revocation: "Can you please stop by at 5?"
# then needs a messaging word nearby, like END/CANCEL/QUIT.
_VISIT_WORDS = frozenset({"by", "in", "over", "off", "at", "and"})
_NEAR = 3  # words either side
_SHORT_REPLY_WORDS = 3  # "STOP STOP", "ok stop": a short reply with STOP in it


def classify_reply(body: str) -> ReplyAction:
    """What an inbound message asks for: a keyword action, a human review, or nothing."""
    action = _KEYWORD_ACTIONS.get(_keyword_of(body) or "")
    if action is not None:
        return action
    if _looks_like_revocation(_fold(body[:_REVIEW_SCAN_CHARS])):
        return ReplyAction.REVIEW
    return ReplyAction.NONE


def _fold(text: str) -> str:
    # Case-folded, accents dropped (NFKD then no combining marks); NFKD also maps
    # full-width and other compatibility letters ("ＳＴＯＰ") to plain ones.
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _keyword_of(body: str) -> str | None:
    """The normalized body when it is short enough to be a bare keyword, else None."""
    # The keyword sets hold these normalized forms, so "ARRÊT!" and "arret" are one.
    body = body.strip()  # str.strip is far cheaper than a regex over long padding
    if _TOO_MANY_LETTERS.match(body):
        return None
    letters = _NOT_ALNUM.sub("", body)  # C-speed, before any per-character work
    if not letters:
        return None
    return _NOT_ALNUM.sub("", _fold(letters))


def _looks_like_revocation(folded: str) -> bool:
    words = _WORD.findall(folded)  # digits split off: "STOP2" -> "stop 2"
    if not words:
        return False
    if _REVOCATION.search(" ".join(words)):
        return True
    for i, word in enumerate(words):
        if word in _STOP_WORDS:
            visit = i + 1 < len(words) and words[i + 1] in _VISIT_WORDS
            if not visit and len(words) <= _SHORT_REPLY_WORDS:
                return True
            if _near(words, i, strong=not visit):
                return True
        elif word in _WEAK_STOP_WORDS and _near(words, i, strong=False):
            return True
    return False


def _near(words: list[str], i: int, *, strong: bool) -> bool:
    around = words[max(0, i - _NEAR) : i] + words[i + 1 : i + 1 + _NEAR]
    return any(
        (strong and word in _NEAR_WORDS) or _MESSAGE_WORD.fullmatch(word) is not None
        for word in around
    )
