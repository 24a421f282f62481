"""The mod-11 check of Norwegian national identity numbers."""

from __future__ import annotations

import pytest

from edi.core.national_id import is_valid_national_id

# The valid-checksum test numbers VALIDATION.md lists (KITH, NAV and NHN test persons; fnr, D-nummer, synthetic).
VALID = ["01010112377", "01010142365", "01038991295", "04030350265", "10108000398", "12057900499", "13116900216",
         "15072500552", "15076500565", "15720255178", "21016400952", "45069800525", "45088649080"]


@pytest.mark.parametrize("number", VALID)
def test_valid_numbers_pass_and_every_single_digit_change_fails(number: str) -> None:
    assert is_valid_national_id(number)
    for position in range(11):
        for digit in "0123456789":
            if digit != number[position]:
                changed = number[:position] + digit + number[position + 1 :]
                assert not is_valid_national_id(changed), changed


@pytest.mark.parametrize("value", ["", "1311690021", "131169002160", "1311690021x", "13116 00216"])
def test_malformed_values_fail(value: str) -> None:
    assert not is_valid_national_id(value)
