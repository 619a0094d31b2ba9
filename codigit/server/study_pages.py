"""codigit's own pages on the embedded server: the study home (`/study/`) and the small script that puts the
study's words into Argilla's UI (`/codigit/ui.js`), with the three API routes they use under `/api/v1/codigit/`.

The pages are static files copied into the server's per-start UI folder, so they are served like the UI itself,
from the same origin and with no third-party request. The routes use argilla-server's own sign-in: a participant
signed in to the UI is signed in here. Every answer the pages send goes to Argilla's own response endpoints;
only withdrawal has a route of its own, which runs exactly what `codigit participants withdraw` runs.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from fastapi import Body, Depends, FastAPI, HTTPException, Security
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.ext.asyncio import AsyncSession

from codigit.errors import CodigitError
from codigit.languages import Localised, choose
from codigit.server import deployed, home_state, submit_rules, usecase_pages
from codigit.server.sqlfilters import enum_value
from codigit.study import Study

PAGES = Path(__file__).parent / "pages"
_LOGGER = logging.getLogger("codigit.server")


def copy_pages(ui_directory: Path) -> None:
    """Put codigit's pages beside the UI's files: /study/ and /codigit/."""
    for folder in ("study", "codigit"):
        shutil.copytree(PAGES / folder, ui_directory / folder, dirs_exist_ok=True)


def _markdown(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).render(text)  # raw HTML in the file is shown as text


def install(api: FastAPI, home: Path, snapshots: Path | None) -> None:
    # private: listed in codigit/upstream.py
    from argilla_server.database import get_async_db
    from argilla_server.security import auth

    def study_or_404() -> tuple[Study, dict[str, Localised]]:
        try:
            current = deployed.current_study(home)
        except deployed.StudyUnavailable:
            raise HTTPException(503, submit_rules.UNAVAILABLE) from None
        if current is None:
            raise HTTPException(404, "no study has been set up on this server yet (`codigit init`)")
        return current

    def public(study: Study, shown: dict[str, Localised], language: str | None) -> dict:
        words = shown[choose(study, language)]
        return {
            "title": words.title, "description": words.description, "contact": words.contact, "texts": words.texts,
            "language": words.language, "languages": {code: each.name for code, each in shown.items()},
            "limits": study.stories.limits,
            "research_workspace": study.research_workspace,  # its members are researchers, not participants
        }  # fmt: skip

    @api.get("/codigit/study", include_in_schema=False)
    async def study_words(lang: str | None = None) -> dict:
        """What the sign-in page and the UI show before anyone signs in, in `lang` if the study has it: no
        participant data."""
        return public(*study_or_404(), lang)

    @api.get("/codigit/home", include_in_schema=False)
    async def participant_home(
        lang: str | None = None, db: AsyncSession = Depends(get_async_db), user=Security(auth.get_current_user)
    ) -> dict:
        """The participant's state, in the language they chose on the study home (else `lang`, their browser's)."""
        study, shown = study_or_404()
        words = public(study, shown, deployed.participant_languages(home).get(user.username) or lang)
        localised = shown[words["language"]]
        state = await home_state.home_state(db, user, study, localised, deployed.closed_rounds(home))
        return {
            **state,
            **words,
            "role": enum_value(user.role),
            # a study asking only for whole texts has no writing guidelines for pairs: its texts' guidelines instead
            "guidelines_html": _markdown(
                localised.guidelines
                if localised.invitations or not localised.contributions
                else localised.contributions.guidelines
            ),  # fmt: skip
            "consent_html": _markdown(localised.consent_text),
            "usecases": await run_in_threadpool(usecase_pages.view, home, study, user.username),
        }

    @api.post("/codigit/language", include_in_schema=False)
    async def choose_language(language: str = Body(..., embed=True), user=Security(auth.get_current_user)) -> dict:
        """A participant's language for the study home and the server's messages to them."""
        study, shown = study_or_404()
        if language not in shown:
            raise HTTPException(422, f"the study has no {language!r} texts; it has {sorted(shown)}")
        deployed.set_language(home, user.username, language)
        if submit_rules.is_participant(user):
            try:  # their own writing and about-you forms follow
                await run_in_threadpool(_reword_forms, home, study, user.username, shown[language])
            except CodigitError as e:
                _LOGGER.error("the forms of %s could not be put into %s: %s", user.username, language, e)
                raise HTTPException(500, "the forms could not be changed; please contact the study team") from None
        return {"language": language}

    @api.post("/codigit/withdraw", include_in_schema=False)
    async def withdraw(confirm: bool = Body(...), reason: str = Body(""), user=Security(auth.get_current_user)) -> dict:
        study, _ = study_or_404()
        if not submit_rules.is_participant(user):
            raise HTTPException(403, "only participants withdraw themselves; organisers use `codigit participants`")
        if not confirm:
            raise HTTPException(422, "withdrawal needs confirm: true")
        try:
            at, _, removed = await run_in_threadpool(_withdraw, home, snapshots, study, user.username, reason)
        except CodigitError as e:  # the cause (with internal addresses) goes to the log, not to the participant
            _LOGGER.error("withdrawal of %s failed: %s", user.username, e)
            raise HTTPException(500, "the withdrawal could not be completed; please contact the study team") from None
        return {"withdrawn_at": at, "review_copies_removed": removed}


def _reword_forms(home: Path, study: Study, username: str, shown: Localised) -> None:
    """The participant's own forms in their language, as `codigit init` would make them, through the same server."""
    from codigit.client import argilla_errors, connect
    from codigit.forms import private_forms

    client = connect(home, embedded=True)
    with argilla_errors():
        private_forms(client, study, client.users(username), None, shown)


def _withdraw(home: Path, snapshots: Path | None, study, username: str, reason: str) -> tuple[str, bool, int]:
    """What `codigit participants withdraw` does, as the owner, through the same server."""
    from codigit.client import argilla_errors, connect
    from codigit.participants import withdraw
    from codigit.records import mirror_withdrawal

    client = connect(home, embedded=True)
    with argilla_errors():
        at, new, removed = withdraw(client, study, username, reason[:2000])
    from codigit.places import place

    try:  # the ledger on the server is the record; this note only lets releases from older snapshots honour it
        snapshots = snapshots or place(home, "snapshots").resolve()  # as `init` recorded it, by now
        mirror_withdrawal(snapshots, username, at)
    except CodigitError as e:
        _LOGGER.warning("%s withdrew (in the ledger) but the note in %s failed: %s", username, snapshots, e)
    try:  # researchers' files on this machine forget their stories too
        from codigit.coding.rounds import forget_stories
        from codigit.participants import story_ids_of

        with argilla_errors():
            for line in forget_stories(place(home, "coding").resolve(), story_ids_of(client, study, username)):
                _LOGGER.info("withdrawal of %s: %s", username, line)
    except CodigitError as e:
        _LOGGER.warning("%s withdrew, but the coding rounds' files could not be updated: %s", username, e)
    return at, new, removed
