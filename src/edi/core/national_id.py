"""Norwegian national identity numbers (fødselsnummer, D-nummer): the mod-11 check digits."""

from __future__ import annotations

_WEIGHTS_1 = (3, 7, 6, 1, 8, 9, 4, 5, 2, 1)  # the trailing 1 takes in the first control digit itself
_WEIGHTS_2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1)


def is_valid_national_id(value: str) -> bool:
    """True when the value is 11 digits whose two control digits are right (fnr, D-nummer, synthetic).

    With each control digit weighted 1, a right number sums to a multiple of 11 under both weightings; a
    remainder of 10 (no valid control digit) can then never reach 0.
    """
    if len(value) != 11 or not value.isdigit():
        return False
    digits = value.encode()
    return (sum((d - 48) * w for d, w in zip(digits, _WEIGHTS_1, strict=False)) % 11 == 0
            and sum((d - 48) * w for d, w in zip(digits, _WEIGHTS_2, strict=True)) % 11 == 0)
