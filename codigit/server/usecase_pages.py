"""The use-case register on the study home (`codigit.usecases`): a member proposes a use through
`POST /api/v1/codigit/usecases`, and the study home lists every use with the board's decision. Nobody is shown who
proposed a use, only whether it was they themselves."""

from __future__ import annotations

from pathlib import Path

from fastapi import Body, Depends, FastAPI, HTTPException, Security
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.ext.asyncio import AsyncSession

from codigit import usecases
from codigit.server import deployed, submit_rules
from codigit.study import Study


def view(home: Path, study: Study, username: str) -> list[dict] | None:
    """The register as a member sees it; None when the study keeps no register."""
    if study.use_cases is None:
        return None
    return [{**use.model_dump(), "mine": by == username} for use, by in usecases.register(home)]


def install(api: FastAPI, home: Path) -> None:
    # private: listed in codigit/upstream.py
    from argilla_server.database import get_async_db
    from argilla_server.security import auth

    @api.post("/codigit/usecases", include_in_schema=False)
    async def propose(
        title: str = Body(""), who: str = Body(""), purpose: str = Body(""), not_for: str = Body(""),
        db: AsyncSession = Depends(get_async_db), user=Security(auth.get_current_user),
    ) -> dict:  # fmt: skip
        try:
            current = deployed.current_study(home)
        except deployed.StudyUnavailable:  # logged by `deployed`; refused rather than stored without the rules
            raise HTTPException(503, submit_rules.UNAVAILABLE) from None
        if current is None or current[0].use_cases is None:
            raise HTTPException(404, "this study keeps no use-case register (`use_cases:` in the study file)")
        study = current[0]
        if not submit_rules.is_participant(user):
            raise HTTPException(403, "members propose uses on their study home; organisers decide with "
                                     "`codigit usecases decide`")  # fmt: skip
        shown = deployed.words(home, deployed.participant_languages(home).get(user.username))
        if user.username in await submit_rules.withdrawals(db, study):
            raise HTTPException(403, shown.texts["rules.withdrawn"])
        values = {"title": title, "who": who, "purpose": purpose, "not_for": not_for}
        if broken := usecases.problem(values, study.use_cases):
            key, figures = broken
            raise HTTPException(422, shown.texts[key].format(**figures))
        return {"id": await run_in_threadpool(usecases.propose, home, user.username, values)}
