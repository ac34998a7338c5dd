"""Opt-outs in the style of the NHS national data opt-out, honoured by the gateway in every query.

A person opts out of every use of their records, or only of uses for research and planning (as the
national data opt-out distinguishes these from their own care), for every restricted dataset or one.
Opt-outs are held by pseudonym, one row per live key epoch, so they find the person's rows whichever
epoch the rows were pseudonymised in; the gateway asks :func:`excluded_subject_nos` and leaves those
people's rows out before it computes anything.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...core.db import utcnow
from ...core.errors import NotFound, ValidationFailed
from .models import OPTOUT_SCOPES, OptOut
from .pseudonyms import Pseudonymiser

#: W3C DPV purposes that are research or planning (the uses a "research_planning" opt-out excludes).
RESEARCH_PLANNING_PURPOSES = frozenset({
    "ResearchAndDevelopment", "AcademicResearch", "ScientificResearch", "NonCommercialResearch",
    "CommercialResearch", "ServiceOptimisation", "OptimisationForController", "OptimiseUserInterface",
    "ImproveExistingProductsAndServices", "ImproveInternalCRMProcesses", "IncreaseServiceRobustness",
    "InternalResourceOptimisation", "Statistics", "PolicyDevelopment", "ServicePlanning",
    "ProvideOfficialStatistics", "PublicPolicyMaking", "ImprovePublicServices",
})
SCOPE_LABELS = {"all": "every use of their records",
                "research_planning": "uses for research and planning (not their own care or safety)"}


class SubjectNumbers(Protocol):
    """The part of the restricted store this module needs."""

    def subject_nos(self, pseudonyms: Iterable[str]) -> dict[str, int]: ...


def purpose_term(purpose: str) -> str:
    """A DPV purpose without its prefix or namespace: ``dpv:AcademicResearch`` -> ``AcademicResearch``."""
    text = (purpose or "").strip()
    for sep in ("#", ":", "/"):
        if sep in text:
            text = text.rsplit(sep, 1)[1]
    return text


def is_research_or_planning(purpose: str) -> bool:
    """True if a use for this DPV purpose counts as research or planning."""
    term = purpose_term(purpose)
    return term in RESEARCH_PLANNING_PURPOSES or term.endswith("Research")


def _check(scope: str) -> None:
    if scope not in OPTOUT_SCOPES:
        raise ValidationFailed(f"Unknown opt-out scope '{scope}'.",
                               {"scope": "Use 'all' (every use) or 'research_planning' (research and planning only)."})


def register_pseudonyms(session: Session, pseudonyms: dict[str, str], *, scope: str = "all",
                        dataset_slug: str | None = None, source: str = "") -> str:
    """Record an opt-out for a person known by their pseudonym per epoch; returns its reference."""
    _check(scope)
    if not pseudonyms:
        raise ValidationFailed("An opt-out needs the person's pseudonym in at least one epoch.",
                               {"pseudonyms": "Identify the person first."})
    reference = "OPT-" + secrets.token_hex(5).upper()
    for epoch, pseudonym in pseudonyms.items():
        session.add(OptOut(reference=reference, pseudonym=pseudonym, epoch=epoch, scope=scope,
                           dataset_slug=dataset_slug or None, source=source))
    session.flush()
    return reference


def register(session: Session, pseudonymiser: Pseudonymiser, *, kind: str, value: str, scope: str = "all",
             dataset_slug: str | None = None, source: str = "") -> str:
    """Record an opt-out for the person with this identifier (pseudonymised at once, never stored)."""
    _check(scope)
    return register_pseudonyms(session, pseudonymiser.pseudonyms_of(kind, value), scope=scope,
                               dataset_slug=dataset_slug, source=source)


def withdraw(session: Session, reference: str) -> int:
    """Withdraw an opt-out (the person opts back in); returns the rows withdrawn."""
    rows = list(session.scalars(select(OptOut).where(OptOut.reference == reference, OptOut.withdrawn_at.is_(None))))
    if not rows:
        raise NotFound(f"There is no active opt-out with reference '{reference}'.")
    for row in rows:
        row.withdrawn_at = utcnow()
    return len(rows)


def excluded_pseudonyms(session: Session, dataset_slug: str, purpose: str) -> set[str]:
    """The pseudonyms whose rows a use of this dataset for this purpose must leave out."""
    scopes = ["all", "research_planning"] if is_research_or_planning(purpose) else ["all"]
    query = select(OptOut.pseudonym).where(
        OptOut.withdrawn_at.is_(None), OptOut.scope.in_(scopes),
        (OptOut.dataset_slug.is_(None)) | (OptOut.dataset_slug == dataset_slug))
    return set(session.scalars(query))


def excluded_subject_nos(session: Session, store: SubjectNumbers, dataset_slug: str, purpose: str) -> set[int]:
    """The ``_subject_no`` of every person opted out of this use (the gateway leaves their rows out)."""
    pseudonyms = excluded_pseudonyms(session, dataset_slug, purpose)
    if not pseudonyms:
        return set()
    return set(store.subject_nos(sorted(pseudonyms)).values())


def summary(session: Session) -> dict[str, Any]:
    """How many people have opted out, by scope (public counts, no pseudonyms)."""
    counts = dict(session.execute(
        select(OptOut.scope, func.count(func.distinct(OptOut.reference)))
        .where(OptOut.withdrawn_at.is_(None)).group_by(OptOut.scope)).all())
    return {scope: int(counts.get(scope, 0)) for scope in OPTOUT_SCOPES}
