"""A researcher codes a story in chromium: signed in, they get Argilla's own pages (not the participants' study
home), find the coding round, read the codebook beside the story, choose codes, write a memo and submit."""

from __future__ import annotations

import csv
import re

import pytest
from browser import PHONE, chromium, option_name, playwright_or_fail
from conftest import ARTIFACTS, REPO, add_participants, codigit, own_study_server

from codigit.coding.codebook import load_codebook

pytestmark = pytest.mark.slow  # a server of its own and a browser

STORY = "Tomas had the steadiest hands on the ward, and nobody asked why a man was the night nurse."


@pytest.fixture
def round_open(tmp_path):
    playwright_or_fail()
    with own_study_server(tmp_path / "home") as server:
        people = add_participants(server, {"ada": "Ada Example"}, tmp_path)
        people["ada"].answer("consent", {"training": "yes", "public": "yes", "attribution": "none"})
        people["ada"].answer("about-you", {"use": "yes", "gender_identity": "woman"})
        people["ada"].answer("stories", {"prompt": "Write about a nurse.", "story": STORY}, "invitation-open")
        opened = codigit("coding", "open", "1", "--coders", "ana-r,ben-r", "--coding", str(tmp_path / "coding"),
                         home=server.home)  # fmt: skip
        assert opened.returncode == 0, opened.stderr
        with (server.home / "researcher-logins.csv").open(newline="") as f:
            logins = {r["username"]: r for r in csv.DictReader(f)}
        yield server, logins


@pytest.mark.parametrize("viewport", [{"width": 1400, "height": 1000}, PHONE], ids=["desktop", "phone"])
def test_a_researcher_codes_a_story_in_argillas_own_pages(round_open, viewport):
    server, logins = round_open
    codebook = load_codebook(REPO / "annotation" / "codebook.yaml")
    ana = logins["ana-r"]
    with chromium(server, f"coding-{viewport['width']}-failure.png") as browser:
        page, expect = browser.new_page(viewport), browser.expect
        page.goto(ana["login_url"])
        page.wait_for_url("**/sign-in")
        page.get_by_label("Username").fill("ana-r")
        page.get_by_label("Password").fill(ana["password"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/datasets$|/$"))
        expect(page.get_by_text("coding-1")).to_be_visible()  # Argilla's list of datasets, not the study home
        assert "/study/" not in page.url
        page.screenshot(path=ARTIFACTS / f"coding-{viewport['width']}-datasets.png", full_page=True)
        page.get_by_text("coding-1").click()
        page.wait_for_url(re.compile(r"/dataset/[0-9a-f-]{36}/annotation-mode"))
        expect(page.get_by_text(STORY)).to_be_visible()
        for text in ("woman", "gender_identity", "Gender identity"):  # positionality is nowhere on the page
            assert text not in page.locator("body").inner_text()
        form = page.get_by_role("form", name="Annotation Questions")
        codes = form.locator('[aria-label="Question: codes"]')
        for name in ("care_work", "stereotype_challenged"):
            title = next(c.title for c in codebook.codes if c.name == name)
            codes.get_by_role("button", name=title, exact=True).click()
            expect(codes.get_by_role("checkbox", name=option_name(title))).to_be_checked()
        form.locator('[aria-label="Question: memo"]').get_by_role("textbox").click()
        page.keyboard.type("Almost intersectionality: class is hinted at.")
        page.screenshot(path=ARTIFACTS / f"coding-{viewport['width']}-story.png", full_page=True)
        form.get_by_role("button", name=re.compile(r"\bSubmit\b")).click()
        expect(page.get_by_text(re.compile("Nothing is waiting for you here|Nothing more to do here"))).to_be_visible()
    client_records = server.http().get("/me/datasets").json()["items"]
    dataset = next(d for d in client_records if d["name"] == "coding-1")
    found = server.http().get(f"/datasets/{dataset['id']}/records", params={"include": "responses"}).json()
    (response,) = found["items"][0]["responses"]
    assert sorted(response["values"]["codes"]["value"]) == ["care_work", "stereotype_challenged"]
    assert response["values"]["memo"]["value"] == "Almost intersectionality: class is hinted at."
