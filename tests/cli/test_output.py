"""The CLI's pure formatting (no I/O): tables, field listings and the one line of an API problem."""

from __future__ import annotations

from cli.output import cell, fields, problem_line, table


def test_a_table_aligns_its_columns_under_their_headings():
    text = table(["ID", "STATUS"], [["a-1", "active"], ["alert-22", "investigating"]])
    assert text.splitlines() == [
        "ID        STATUS",
        "a-1       active",
        "alert-22  investigating",
    ]


def test_a_table_with_no_rows_is_its_headings():
    assert table(["ID", "STATUS"], []) == "ID  STATUS"


def test_cells_show_none_as_a_dash_booleans_as_words_and_numbers_briefly():
    assert [cell(None), cell(True), cell(False), cell(12.5), cell(2.0), cell(33.3333), cell(7)] == [
        "-", "yes", "no", "12.5", "2", "33.33", "7"]


def test_a_long_cell_is_cut_with_an_ellipsis_in_a_table_but_whole_in_a_listing():
    long = "x" * 100
    row = table(["TITLE"], [[long]]).splitlines()[1]
    assert len(row) == 48 and row.endswith("…")
    assert fields({"description": long}) == f"description  {long}"


def test_control_characters_from_an_alert_never_reach_the_terminal():
    # An alert's text comes from outside: an escape sequence must not recolour or move the terminal.
    assert cell("Impossible\ttravel\n\x1b[2Jnow") == "Impossible travel \\x1b[2Jnow"
    assert "\x1b" not in table(["T"], [["\x1b[31mred"]])
    assert "\x1b" not in fields({"\x1b]0;title": "x"})


def test_a_listing_names_each_field_and_shows_nested_values_as_compact_json():
    text = fields({"currentScore": 12.5, "updatedDateTime": None,
                   "partnerCenterSync": {"state": "synced", "attempts": 1}, "affectedResources": []})
    assert text.splitlines() == [
        "currentScore       12.5",
        "updatedDateTime    -",
        'partnerCenterSync  {"state":"synced","attempts":1}',
        "affectedResources  []",
    ]


def test_a_problem_is_one_line_title_then_detail():
    assert problem_line(404, {"title": "Alert not found", "status": 404, "detail": "no alert 'x'"}) == (
        "Alert not found: no alert 'x'")
    assert problem_line(401, {"title": "Unauthorized", "status": 401}) == "Unauthorized"


def test_a_problem_names_the_fields_of_a_422_its_detail_does_not_and_when_to_retry():
    body = {"title": "Invalid request", "status": 422, "detail": "the body does not validate",
            "errors": [{"field": "body.role", "message": "Input should be 'adminAgent'"}]}
    assert problem_line(422, body) == (
        "Invalid request: the body does not validate (body.role: Input should be 'adminAgent')")
    said = {**body, "detail": "body.role: Input should be 'adminAgent'"}
    assert problem_line(422, said) == "Invalid request: body.role: Input should be 'adminAgent'"
    assert problem_line(429, {"title": "Too many requests", "status": 429}, retry_after="3") == (
        "Too many requests (retry after 3 s)")


def test_an_answer_that_is_not_a_problem_document_is_its_status_and_first_line():
    assert problem_line(502, None, text="<html>\nBad gateway</html>") == "HTTP 502: <html>"
    assert problem_line(500, None, text="") == "HTTP 500"
