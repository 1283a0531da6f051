"""Audit roles proposed for a drafted schema, from column names and kinds only.

:func:`propose_roles` marks likely quasi-identifiers (demographics, geography, dates) and
likely secrets (income, health, diagnosis, ...) in drafted column specs, so that
``dpsynth audit`` on a drafted schema runs every attack. The proposal reads no data value:
it looks at the column's name and drafted kind. Each proposed role is marked
``private_inferred`` in the column's ``sources`` (drafted, to be reviewed), and a note names
the columns.
"""

from __future__ import annotations

import re
from typing import Any

from dpsynth.tabular.columns import Role, Source

__all__ = ["QI_STEMS", "SECRET_STEMS", "propose_roles"]

#: Name stems of sensitive attributes (GDPR special categories, finances, health).
SECRET_STEMS = (
    "income", "salary", "salaries", "wage", "earning", "payroll", "compensation", "revenue",
    "wealth", "debt", "loan", "credit", "health", "diagnos", "disease", "illness", "medical",
    "medication", "treatment", "drug", "symptom", "hiv", "cancer", "diabet", "pregnan",
    "disab", "mental", "psychiatr", "therapy", "icd", "religio", "sexual", "orientation",
    "criminal", "convict", "offence", "offense", "politic", "union", "genetic", "biometric",
)
#: Name stems of quasi-identifiers: demographics, geography, dates.
QI_STEMS = (
    "age", "birth", "dob", "sex", "gender", "race", "ethnic", "nationality", "native",
    "citizen", "marital", "married", "relationship", "education", "degree", "occupation",
    "job", "profession", "employ", "zip", "postal", "postcode", "city", "town", "county",
    "state", "region", "province", "district", "municipal", "country", "location", "geo",
    "lat", "latitude", "lon", "lng", "longitude", "address", "neighbourhood", "neighborhood",
    "date", "year", "admission", "discharge", "death",
)
_SHORT = {"age", "sex", "dob", "lat", "lon", "lng", "job", "hiv", "icd", "geo"}
_DATE_KINDS = {"datetime", "date"}


def _words(name: str) -> list[str]:
    """Lower-case words of a column name (splits on punctuation, digits and camelCase)."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return [w for w in re.split(r"[^A-Za-z]+", spaced.lower()) if w]


def _matches(words: list[str], stems: tuple[str, ...]) -> bool:
    """A word equals a short stem, or starts with a longer one."""
    return any(w == s if s in _SHORT else w.startswith(s) for w in words for s in stems)


def _role(spec: dict[str, Any]) -> Role | None:
    if spec.get("kind") == "identifier" or spec.get("role", Role.none.value) != Role.none.value:
        return None
    words = _words(str(spec["name"]))
    if _matches(words, SECRET_STEMS):
        return Role.sensitive
    if _matches(words, QI_STEMS) or spec.get("kind") in _DATE_KINDS:
        return Role.quasi_identifier
    return None


def propose_roles(specs: list[dict[str, Any]], notes: list[str]) -> list[dict[str, Any]]:
    """``specs`` with drafted audit roles; a note naming them is appended to ``notes``.

    Secrets win over quasi-identifiers when a name suggests both (``income_year``).
    Identifier columns and columns that already have a role are left alone.

    Args:
        specs: Drafted column specs (dicts as :func:`dpsynth.tabular.draft.draft_schema`
            builds them).
        notes: The draft's notes; one is added when any role is proposed.

    Returns:
        New specs; ``role`` set and ``sources["role"] = "private_inferred"`` where proposed.
    """
    out: list[dict[str, Any]] = []
    found: dict[Role, list[str]] = {Role.quasi_identifier: [], Role.sensitive: []}
    for spec in specs:
        role = _role(spec)
        if role is None:
            out.append(spec)
            continue
        found[role].append(str(spec["name"]))
        out.append({**spec, "role": role.value,
                    "sources": {**spec.get("sources", {}), "role": Source.private_inferred.value}})
    if any(found.values()):
        qis = ", ".join(found[Role.quasi_identifier]) or "none"
        secrets = ", ".join(found[Role.sensitive]) or "none"
        notes.append(f"audit roles drafted from column names and kinds (review them: dpsynth audit uses "
                     f"them): quasi-identifiers: {qis}; secrets: {secrets}")
    return out
