"""How ``tenant offboard`` shows the write API's answer (pure, no I/O)."""

from __future__ import annotations

from cli.tenant import offboarding_text


def test_an_offboarding_is_its_tenant_then_its_rows_per_table_then_its_tombstones_per_topic():
    answer = {"tenantId": "contoso", "dryRun": True, "offboardedDateTime": None,
              "rows": {"ingest.channels": 1, "ingest.alert_notes": 12, "auth.api_keys": 0},
              "tombstones": {"security-contacts": 1, "alert-triage": 13}}
    assert offboarding_text(answer).splitlines() == [
        "tenantId            contoso",
        "dryRun              yes",
        "offboardedDateTime  -",
        "",
        "TABLE               ROWS",
        "ingest.channels     1",
        "ingest.alert_notes  12",
        "auth.api_keys       0",
        "",
        "TOPIC              TOMBSTONES",
        "security-contacts  1",
        "alert-triage       13",
    ]


def test_an_offboarding_with_nothing_to_tombstone_says_so_with_headings_alone():
    text = offboarding_text({"tenantId": "t", "dryRun": False, "offboardedDateTime": "2026-05-01T10:00:00Z",
                             "rows": {}, "tombstones": {}})
    assert text.splitlines()[-3:] == ["TABLE  ROWS", "", "TOPIC  TOMBSTONES"]
