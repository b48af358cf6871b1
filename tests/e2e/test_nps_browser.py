"""NPS on the journey report, in a real browser against a real server: answers posted through
the public feedback API show up in the "NPS over time" and "NPS by lifecycle stage" charts, and
clicking a period opens the journey report of that period alone.

Playwright drives Debian's Chromium (/usr/bin/chromium); the page may reach only the server
(Chart.js is vendored under analytics/, no CDN). The server is shared by the session, so the
test compares the report before and after its own answers instead of assuming it is alone.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.conftest import Server
from tests.e2e.test_zone_editor_browser import log_in

# The server fixture (`cms_server`) picks the mode of the pass, so this runs in both.
pytestmark = [pytest.mark.e2e, pytest.mark.browser]

REPORT_PAGE = "/admin/analytics/eventrollup/"
SCORES = (10, 10, 9, 8, 3)  # 3 promoters, 1 passive, 1 detractor


def post_answers(server: Server) -> None:
    """Anonymous visitors answering, as a storefront's NPS widget would."""
    token = secrets.token_hex(4)
    with server.client() as client:
        for index, score in enumerate(SCORES):
            response = client.post(
                "/api/v1/feedback/",
                json={"score": score, "comment": f"Answer {index}", "context": {"page": "/"}},
                headers={"X-Anonymous-Id": f"e2e-nps-{token}-{index}"},
            )
            assert response.status_code == 201, response.text[:500]
            assert response.json()["sentiment"] is None


def embedded_report(page: Any) -> dict[str, Any]:
    return json.loads(page.locator("#journey-report-data").text_content())


def chart_data(page: Any, canvas_id: str) -> dict[str, Any]:
    """What Chart.js drew on a canvas: labels, each dataset's values, and the canvas size; None
    if no chart is drawn on it within 5 s (after a navigation the page's script may not have run
    yet when the test asks)."""
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function(
            "(id) => window.Chart && Chart.getChart(document.getElementById(id))",
            arg=canvas_id,
            timeout=5000,
        )
    return page.evaluate(
        """(id) => {
            const canvas = document.getElementById(id);
            const chart = Chart.getChart(canvas);
            if (!chart) { return null; }
            return {
                labels: chart.data.labels,
                datasets: chart.data.datasets.map((d) => ({label: d.label, data: d.data})),
                width: canvas.width,
                height: canvas.height,
            };
        }""",
        canvas_id,
    )


def test_answers_posted_through_the_api_draw_the_nps_charts_and_a_period_opens_its_report(
    page: Any, cms_server: Server, outside_requests: list[str], page_errors: list[str]
) -> None:
    from playwright.sync_api import expect

    log_in(page, cms_server)
    page.goto(REPORT_PAGE)
    before = embedded_report(page)["nps"]

    post_answers(cms_server)
    page.goto(REPORT_PAGE)

    # The figures: exactly our answers more than before
    after = embedded_report(page)["nps"]
    assert after["interval"] == "week"
    assert after["responses"] - before["responses"] == len(SCORES)
    assert after["promoters"] - before["promoters"] == 3
    assert after["passives"] - before["passives"] == 1
    assert after["detractors"] - before["detractors"] == 1
    expected = round((after["promoters"] - after["detractors"]) * 100 / after["responses"], 1)
    assert after["nps"] == expected
    summary = page.locator(".nps-summary")
    expect(summary).to_contain_text(f"NPS {after['nps']:.1f}")
    expect(summary).to_contain_text(f"from {after['responses']} answers")

    # NPS over time: drawn, this week's point carries our answers
    expect(page.locator("#nps-series-chart")).to_be_visible()
    series = chart_data(page, "nps-series-chart")
    assert series is not None, "the NPS chart was not drawn"
    assert series["width"] > 0 and series["height"] > 0
    by_label = {dataset["label"]: dataset["data"] for dataset in series["datasets"]}
    this_week = after["series"][-1]
    assert series["labels"][-1] == this_week["label"]
    assert this_week["nps"] is not None and this_week["responses"] >= len(SCORES)
    assert by_label["NPS"][-1] == this_week["nps"]
    assert by_label["Answers"][-1] == this_week["responses"]

    # NPS by lifecycle stage: anonymous visitors answer as visitors
    stages = chart_data(page, "nps-stages-chart")
    assert stages is not None, "the NPS by stage chart was not drawn"
    assert "Visitor" in stages["labels"]
    expect(page.locator("figure", has=page.locator("#nps-stages-chart"))).to_contain_text("Visitor")

    # A click on this week's column opens the journey report of this week alone, by day
    x, y = page.evaluate(
        """() => {
            const chart = Chart.getChart(document.getElementById("nps-series-chart"));
            const bars = chart.getDatasetMeta(1).data;
            const last = bars[bars.length - 1];
            return [last.x, (chart.chartArea.top + chart.chartArea.bottom) / 2];
        }"""
    )
    page.locator("#nps-series-chart").click(position={"x": x, "y": y})  # scrolled into view

    expect(page).to_have_url(f"{cms_server.base_url}{REPORT_PAGE}{this_week['href']}")
    drilled = embedded_report(page)["nps"]
    assert drilled["interval"] == "day"
    assert drilled["responses"] == this_week["responses"]
    assert chart_data(page, "nps-series-chart") is not None
    expect(page.locator("#journey-stages-chart")).to_be_visible()

    assert not page_errors, page_errors
    assert not outside_requests, outside_requests
