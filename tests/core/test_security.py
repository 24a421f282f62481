"""Hostile input: refused with a clear error, no network access attempted, memory bounded."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from edi.core.validation import Validator


@pytest.fixture
def listener() -> Iterator[tuple[int, socket.socket]]:
    """A loopback port that would see any attempt to fetch a DTD or entity."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    yield server.getsockname()[1], server
    server.close()


def assert_no_connection(server: socket.socket) -> None:
    with pytest.raises(TimeoutError):
        server.accept()


def refusal(validator: Validator, data: bytes) -> tuple[str, str]:
    report = validator.validate(data)
    assert report.valid is False and report.header is None
    problem = report.errors[0]
    return problem.code, problem.message


def test_external_entity_is_refused_without_fetching(validator: Validator, listener: tuple[int, socket.socket]) -> None:
    port, server = listener
    for target in (f"http://127.0.0.1:{port}/secret", "file:///etc/passwd"):
        doc = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{target}">]><r>&x;</r>'.encode()
        code, message = refusal(validator, doc)
        assert code == "EDI-XML-005" and "declares entities" in message
    assert_no_connection(server)


def test_external_dtd_is_refused_without_fetching(validator: Validator, listener: tuple[int, socket.socket]) -> None:
    port, server = listener
    for doctype in (f'SYSTEM "http://127.0.0.1:{port}/x.dtd"', f'PUBLIC "-//X//Y" "http://127.0.0.1:{port}/y.dtd"'):
        code, message = refusal(validator, f'<?xml version="1.0"?><!DOCTYPE MsgHead {doctype}><MsgHead/>'.encode())
        assert code == "EDI-XML-005" and "external DTD" in message
    assert_no_connection(server)


def test_parameter_entities_and_xinclude_fetch_nothing(
    validator: Validator, listener: tuple[int, socket.socket]
) -> None:
    port, server = listener
    pe = f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p">%p;]><r/>'.encode()
    assert refusal(validator, pe)[0] == "EDI-XML-005"
    xinclude = (f'<r xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="http://127.0.0.1:{port}/x"/></r>'
                ).encode()
    validator.validate(xinclude)  # XInclude is never processed: the element is just an unknown element
    assert_no_connection(server)


BILLION_LAUGHS = textwrap.dedent("""\
    <?xml version="1.0"?>
    <!DOCTYPE lolz [
      <!ENTITY lol "lol">
      <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
      <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
      <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
      <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
      <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
      <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
      <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
      <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
      <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
    ]>
    <lolz a="&lol9;">&lol9;</lolz>
    """).encode()


def test_billion_laughs_is_refused(validator: Validator) -> None:
    code, message = refusal(validator, BILLION_LAUGHS)
    assert code == "EDI-XML-005" and "declares entities" in message


_MEASURE = textwrap.dedent("""\
    import resource, sys
    from edi.core.catalog import SchemaCatalog
    from edi.core.validation import Validator
    validator = Validator(SchemaCatalog())
    validator.validate(b"<r/>")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = validator.validate(sys.stdin.buffer.read())
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(report.errors[0].code, (after - before) // 1024)
    """)


@pytest.mark.parametrize("kind", ["billion_laughs", "quadratic_blowup", "oversize"])
def test_memory_stays_bounded(kind: str) -> None:
    """Measured in a fresh process: the peak resident size grows by less than 64 MB for each attack."""
    if kind == "billion_laughs":
        data = BILLION_LAUGHS
    elif kind == "quadratic_blowup":
        big = "x" * 100_000
        data = (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "{big}">]><r>' + "&a;" * 20_000 + "</r>").encode()
    else:
        data = b"<r>" + b"A" * (36 * 1024 * 1024) + b"</r>"
    result = subprocess.run([sys.executable, "-c", _MEASURE], input=data, capture_output=True, check=True)
    code, growth_mb = result.stdout.decode().split()
    assert code == {"oversize": "EDI-XML-002"}.get(kind, "EDI-XML-005")
    assert int(growth_mb) < 64, f"{kind}: peak memory grew by {growth_mb} MB"


def test_a_doctype_after_comments_is_refused_and_one_mentioned_in_the_body_is_not(validator: Validator) -> None:
    after_comments = b'<?xml version="1.0"?><!-- a <note> --><?pi x?>\n<!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>'
    assert refusal(validator, after_comments)[0] == "EDI-XML-005"
    mentioned = b'<?xml version="1.0"?><r><!-- <!DOCTYPE r [<!ENTITY a "b">]> --><![CDATA[<!DOCTYPE>]]></r>'
    assert validator.validate(mentioned).errors == []


def test_oversize_input_is_refused_before_parsing(validator: Validator) -> None:
    data = b"<r>" + b"A" * (35 * 1024 * 1024) + b"</r>"
    code, message = refusal(validator, data)
    assert code == "EDI-XML-002"
    assert "36700167 bytes" in message and "36700160 bytes" in message and "FileReference" in message


def test_wrong_declared_encoding(validator: Validator) -> None:
    latin1_claiming_utf8 = '<?xml version="1.0" encoding="UTF-8"?><r>blåbær</r>'.encode("latin-1")
    code, message = refusal(validator, latin1_claiming_utf8)
    assert code == "EDI-XML-004" and "declared encoding" in message
    utf8_claiming_utf16 = '<?xml version="1.0" encoding="UTF-16"?><r>blåbær</r>'.encode()
    code, message = refusal(validator, utf8_claiming_utf16)
    assert code == "EDI-XML-004" and "declares UTF-16" in message
    unknown = b'<?xml version="1.0" encoding="x-klingon"?><r/>'
    assert refusal(validator, unknown)[0] == "EDI-XML-004"


def test_the_declared_encoding_is_honoured(validator: Validator) -> None:
    for encoding in ("ISO-8859-1", "UTF-16", "UTF-8"):
        data = f'<?xml version="1.0" encoding="{encoding}"?><r>blåbær</r>'.encode(encoding.lower())
        report = validator.validate(data)
        assert report.errors == [], encoding  # well-formed: only 'no routing header' and 'no schema' warnings


def test_not_well_formed_gives_line_and_column(validator: Validator) -> None:
    code, message = refusal(validator, b'<?xml version="1.0"?>\n<MsgHead>\n  <MsgInfo>\n</MsgHead>')
    report = validator.validate(b'<?xml version="1.0"?>\n<MsgHead>\n  <MsgInfo>\n</MsgHead>')
    assert code == "EDI-XML-003" and report.errors[0].apprec_code == "T01"
    assert report.errors[0].line == 4 and "line 4, column" in message


def test_a_large_attachment_under_the_limit_is_read(validator: Validator) -> None:
    """A 20 MB text node (a big base64 attachment) is fine; only the document's total size is limited."""
    data = b'<?xml version="1.0" encoding="UTF-8"?><r>' + b"QUJD" * (5 * 1024 * 1024) + b"</r>"
    report = validator.validate(data)
    assert report.errors == [], [p.message for p in report.errors]


def test_deep_nesting_is_refused_not_a_crash(validator: Validator) -> None:
    data = b"<a>" * 100_000 + b"</a>" * 100_000
    code, message = refusal(validator, data)
    assert code == "EDI-XML-003" and "line 1" in message
