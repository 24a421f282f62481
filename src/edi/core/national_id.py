"""Norwegian national identity numbers (fødselsnummer, D-nummer): the mod-11 check digits."""

from __future__ import annotations

_WEIGHTS_1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_WEIGHTS_2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def _check_digit(digits: list[int], weights: tuple[int, ...]) -> int | None:
    remainder = 11 - sum(d * w for d, w in zip(digits, weights, strict=False)) % 11
    if remainder == 11:
        return 0
    return None if remainder == 10 else remainder


def is_valid_national_id(value: str) -> bool:
    """True when the value is 11 digits whose two control digits are right (fnr, D-nummer, synthetic)."""
    if len(value) != 11 or not value.isdigit():
        return False
    digits = [int(c) for c in value]
    return _check_digit(digits[:9], _WEIGHTS_1) == digits[9] and _check_digit(digits[:10], _WEIGHTS_2) == digits[10]
