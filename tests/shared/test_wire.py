"""Wire conventions: out-of-range date-times and text that cannot be stored (no I/O)."""

import json
from typing import Any

import pytest
from pydantic import ValidationError

from shared.alerts import Alert
from shared.wire import WireModel, parse_utc


def test_a_date_time_whose_utc_is_before_year_one_is_a_value_error():
    with pytest.raises(ValueError, match="out of range"):
        parse_utc("0001-01-01T00:00:00+01:00")
    with pytest.raises(ValidationError, match="out of range"):
        Alert.model_validate({"id": "a", "detectedDateTime": "0001-01-01T00:00:00+01:00"})


class Note(WireModel):
    text: str = ""
    details: dict[str, Any] = {}


@pytest.mark.parametrize("bad", ["\x00", "a\ud800b", "\udfff"])
def test_nul_and_lone_surrogates_are_refused_anywhere(bad):
    with pytest.raises(ValidationError, match="NUL character or an unpaired surrogate"):
        Note.model_validate({"text": bad})
    with pytest.raises(ValidationError, match=r"details\.k\[1\]\.deep"):
        Note.model_validate({"details": {"k": [1, {"deep": bad}]}})
    with pytest.raises(ValidationError):
        Note.model_validate({"details": {bad: 1}})
    with pytest.raises(ValidationError, match="additionalDetails.x"):
        Alert.model_validate({"id": "a", "additionalDetails": {"x": bad}})
    with pytest.raises(ValidationError, match=r"activityLogs\[0\]"):
        Alert.model_validate({"id": "a", "activityLogs": [{"updatedBy": bad}]})


@pytest.mark.parametrize("escape", [r"\u0000", r"\ud800", r"\uDFFF"])
def test_json_bytes_refuse_nul_and_lone_surrogates_written_as_escapes(escape):
    # Bytes with no \u escape skip the scan (the parser refuses raw control characters and invalid
    # UTF-8); those with one are scanned as any input (the parser refuses a lone surrogate's escape itself).
    refused = "NUL character or an unpaired surrogate|surrogate|hex escape"
    with pytest.raises(ValidationError, match=refused):
        Note.model_validate_json(f'{{"details": {{"k": [1, {{"deep": "a{escape}b"}}]}}}}'.encode())
    with pytest.raises(ValidationError, match=refused):
        Note.model_validate_json(f'{{"text": "{escape}"}}')
    with pytest.raises(ValidationError, match="json_invalid|Invalid JSON"):
        Note.model_validate_json(b'{"text": "a\x00b"}')
    assert Note.model_validate_json(rb'{"text": "\u00e9 \ud83d\ude00"}').text == "\u00e9 \U0001f600"
    assert Note.model_validate_json(b'{"text": "plain"}').text == "plain"


def test_ordinary_text_including_paired_surrogates_passes():
    note = Note.model_validate({"text": "emoji 😀 and tab\t", "details": {"k": ["é", {"n": None}]}})
    assert note.text == "emoji 😀 and tab\t"
    assert Note.model_validate(note) == note


@pytest.mark.parametrize(
    "placeholder", ["0001-01-01T00:00:00", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000+00:00"]
)
def test_the_first_instant_is_a_none_placeholder_like_the_year_9999(placeholder):
    # .NET feeds write DateTime.MinValue for "never", as the older feed writes 9999-12-31; stored,
    # PostgreSQL would keep it as -infinity and hand back a naive datetime that breaks every reader.
    assert parse_utc(placeholder) is None
    assert parse_utc("0001-01-02T00:00:00Z").year == 1


def test_json_with_no_escape_is_read_as_the_scanning_validation_reads_it():
    # Such JSON is validated without the scans' wrap around each nested model (#15): the same model,
    # the same nested models, the same errors of everything else.
    text = ('{"id": "a", "displayName": "Sign-in", "detectedDateTime": "2026-12-01T10:00:00.1234567Z",'
            ' "affectedResources": [{"resourceId": "vm-1"}], "activityLogs": [{"updatedBy": "x"}],'
            ' "additionalDetails": {"k": [1, {"deep": "é"}]}}')
    fast = Alert.model_validate_json(text.encode())
    assert fast == Alert.model_validate_json(text) == Alert.model_validate(json.loads(text))
    assert type(fast.affected_resources[0]).__name__ == "AffectedResource"
    with pytest.raises(ValidationError, match=r"affectedResources\.0"):
        Alert.model_validate_json(b'{"id": "a", "affectedResources": [7]}')
