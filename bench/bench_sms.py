"""Rule-core throughput: full message checks/s and phone checks/s, each beside its floor,
and the two parts of a check that each run once per message of a blast.

Floors, measured in the same run on the same inputs:
- message check: segment counting alone (`segment_info`), the part no check can skip;
- phone check: bare libphonenumber parse + is_valid_number + format_number(E164).
Targets (issue 2): >= 50,000 message checks/s; phone checks >= 80% of the floor; the
opt-out clause search and a 160-character template's render each >= 50,000/s (20 µs).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import phonenumbers

from bench.common import best_rate, print_table
from sendline.shortener_files import packaged_shorteners
from sendline.sms.check import MessageRules, check_message
from sendline.sms.encoding import segment_info
from sendline.sms.optout import has_optout_clause, with_optout_clause
from sendline.sms.phone import check_phone
from sendline.sms.templates import Template

_WORDS = "sale today only new spring collection visit our store friends save big on shoes".split()
_FLAVOURS = {
    "gsm": "",
    "extension": "{}[]€~^|",
    "ucs2": "áíóúçâêôœ’“”–",
    "emoji": "😀🎉🔥👍🏽🇫🇷❤️",
}


def _bodies(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    bodies = []
    for index in range(count):
        flavour = list(_FLAVOURS)[index % len(_FLAVOURS)]
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < 160:
            words.append(rng.choice(_WORDS))
            if _FLAVOURS[flavour] and rng.random() < 0.15:
                words.append(rng.choice(_FLAVOURS[flavour]))
        if index % 3 == 0:
            words[-4:] = ["Reply", "STOP", "to", "opt out"]
        if index % 5 == 0:
            words.insert(3, rng.choice(["https://shop.example.com/s", "bit.ly/x1", "example.org"]))
        bodies.append(" ".join(words)[:160])
    return bodies


def _numbers(count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    shapes = [
        lambda: f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}",
        lambda: f"+1 415 {rng.randint(200, 999)} {rng.randint(0, 9999):04d}",
        lambda: f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} 00",
        lambda: f"+44 7{rng.randint(100, 999)} {rng.randint(100000, 999999)}",
        lambda: f"+55 11 9{rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
        lambda: f"06 {rng.randint(10, 99)} {rng.randint(10, 99)} 34 56",  # invalid as US
        lambda: f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} 53 00",  # landline
    ]
    return [shapes[i % len(shapes)]() for i in range(count)]


def run() -> None:
    bodies = _bodies(2000)
    rules = MessageRules(shorteners=packaged_shorteners())
    segment_floor = best_rate(lambda: sum(1 for b in bodies if segment_info(b)))
    checks = best_rate(lambda: sum(1 for b in bodies if check_message(b, rules)))

    numbers = _numbers(20000)
    phone_floor = best_rate(lambda: _bare_phonenumbers(numbers), repeat=3)
    phones = best_rate(lambda: sum(1 for n in numbers if check_phone(n)), repeat=3)

    clause_bodies = [
        with_optout_clause(("Hi Ann! Spring sale: 20% off all shoes this weekend at " * 3)[:138]),
        ("Hi Ann! Spring sale this weekend. " * 5)[:160],
    ] * 1000
    clauses = best_rate(lambda: _each(has_optout_clause, clause_bodies))
    template = Template.compile(
        "Hi %FIRSTNAME|there%! Your order %EVENT.ORDER_ID% has shipped. Get 20% off your "
        "next visit to our %CITY% store this week with code THANKS20. See you soon!!",
        ["EVENT.*", "CITY"],
    )
    values = {"FIRSTNAME": "Ann", "EVENT.ORDER_ID": "A-1042", "CITY": "Lyon"}
    renders = best_rate(lambda: _each(template.render, [values] * 2000))

    print_table(
        ["figure", "per second", "floor per second", "ratio", "target"],
        [
            [
                "message checks (160 chars)",
                f"{checks:,.0f}",
                f"{segment_floor:,.0f}",
                f"{checks / segment_floor:.2f}",
                ">= 50,000/s",
            ],
            [
                "phone checks",
                f"{phones:,.0f}",
                f"{phone_floor:,.0f}",
                f"{phones / phone_floor:.2f}",
                ">= 0.80 of floor",
            ],
            ["opt-out clause search (160 chars)", f"{clauses:,.0f}", "", "", ">= 50,000/s"],
            ["template render (160 chars)", f"{renders:,.0f}", "", "", ">= 50,000/s"],
        ],
    )


def _each(function: Callable[[Any], object], items: list[Any]) -> int:
    """Call `function` on every item; returns how many (for `best_rate`)."""
    for item in items:
        function(item)
    return len(items)


def _bare_phonenumbers(numbers: list[str]) -> int:
    done = 0
    for raw in numbers:
        try:
            number = phonenumbers.parse(raw, "US")
        except phonenumbers.NumberParseException:
            continue
        phonenumbers.is_valid_number(number)
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        done += 1
    return len(numbers) if done else 0
