"""The schema drafter: the one module of dpsynth that reads private data for convenience.

:func:`draft_schema` reads a data frame and proposes a schema, marking every fact it derived
``private_inferred`` so that fitting refuses it until the caller replaces the facts with public
ones (or explicitly accepts the caveat). No record's value is copied: bounds are rounded
outward to a public grid, rare categories are left out, and likely identifiers are dropped.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.tabular.columns import Source, canonical_key
from dpsynth.tabular.draft_roles import propose_roles
from dpsynth.tabular.schema import Schema, parse_schema

__all__ = ["ATOM_SHARE", "MIN_CATEGORY_COUNT", "datetime_grid_bounds", "draft_schema", "grid_bounds"]

#: A category seen fewer times than this in the data is never copied into a drafted schema.
MIN_CATEGORY_COUNT = 10
#: A number holding at least this share of a binned column's rows is drafted as an atom.
ATOM_SHARE = 0.05
#: Null spellings the drafter recognises in text (the schema's default ``missing_values``).
_NULL_TOKENS = ("NA", "N/A", "NaN", "nan", "null", "NULL", "None")
#: Datetime formats the drafter tries, in order; the first that writes back >= 99% of a sample wins.
_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d",
            "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%b %d %Y", "%d %b %Y",
            "%B %d, %Y")

_ID_NAME = re.compile(
    r"(^|[_\W])(id|uuid|guid|ssn|e-?mail|phone|tel|name|surname|address|record|mrn)([_\W]|$)", re.IGNORECASE
)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?\(?\d[\d\s().-]{5,}\d")
_SSN = re.compile(r"\d{3}-\d{2}-\d{4}")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_DATE_LIKE = re.compile(r"\d{1,4}[-./]\d{1,2}[-./]\d{1,4}([T ].*)?")
_DATE_SHAPE = re.compile(r"(?<!\d)\d{4}(?!\d)|\d{1,2}[/.-]\d{1,2}[/.-]\d{2}")
#: currency sign, number (optionally with thousands separators), unit or percent sign
_UNIT_NUMBER = re.compile(r"^([$€£¥])?\s*([+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)\s*(%|°?[^\W\d_]{1,6}\.?)?$")
_CODE_COL = re.compile(r"zip|postal|postcode|fips|(^|[_\W])code", re.IGNORECASE)
_MONTH_COL = re.compile(r"month(?!s)", re.IGNORECASE)
_WEEKDAY_COL = re.compile(r"weekday|day_?of_?(the_?)?week|(^|[_\W])dow([_\W]|$)", re.IGNORECASE)
_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def grid_bounds(lo: float, hi: float) -> tuple[int, int]:
    """Bounds rounded outward to a coarse public grid (a power of ten), hiding the extremes.

    The step is ``10 ** floor(log10(max(|lo|, |hi|, 1)))``, so ``[3, 987654.321]`` becomes
    ``[0, 1000000]``. A bound equals a data value only when that value lies on the grid.
    """
    m = max(abs(lo), abs(hi), 1.0)
    step = 10 ** math.floor(math.log10(m))
    while step * 10 <= m:  # guard log10 rounding
        step *= 10
    while step > m:
        step //= 10
    g_lo, g_hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
    while g_lo > lo:
        g_lo -= step
    while g_hi < hi:
        g_hi += step
    if g_lo == g_hi:
        g_hi += step
    return int(g_lo), int(g_hi)


def datetime_grid_bounds(lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Datetime bounds rounded outward to whole years, or whole months for spans under two years.

    Years: 1 January of the earliest value's year to 1 January of the year after the latest
    value's year. Months (when the data span less than 730 days): the first of the earliest
    value's month to the first of the month after the latest value's month.
    """
    tz = lo.tz
    if (hi - lo) >= pd.Timedelta(days=730):
        return pd.Timestamp(year=lo.year, month=1, day=1, tz=tz), pd.Timestamp(year=hi.year + 1, month=1, day=1, tz=tz)
    nxt_year, nxt_month = (hi.year + 1, 1) if hi.month == 12 else (hi.year, hi.month + 1)
    return (pd.Timestamp(year=lo.year, month=lo.month, day=1, tz=tz),
            pd.Timestamp(year=nxt_year, month=nxt_month, day=1, tz=tz))


def _fraction(mask: pd.Series) -> float:
    return float(mask.mean()) if len(mask) else 0.0


def _phone_like(text: pd.Series) -> pd.Series:
    """Phone-number shape: 7-15 digits in separated groups (or a leading + or parenthesis).

    Plain numbers (``-93.28300416``), dates (``2018-02-09``) and ZIP+4 codes are not phones.
    """
    digits = text.str.count(r"\d")
    grouped = (text.str.count(r"[\s().-]+") >= 2) | text.str.contains(r"^\+|\(", regex=True)
    other = text.str.fullmatch(_NUMBER) | text.str.fullmatch(_DATE_LIKE) | text.str.fullmatch(r"\d{5}-\d{4}")
    return text.str.fullmatch(_PHONE) & digits.between(7, 15) & grouped & ~other


def _pattern_identifier(text: pd.Series) -> bool:
    sample = text.head(500)
    return any(_fraction(sample.str.fullmatch(p)) > 0.8 for p in (_EMAIL, _SSN)) or _fraction(_phone_like(sample)) > 0.8


def _boolean(text: pd.Series) -> bool:
    """Two spellings of true and false (yes/no, y/n, t/f, 0/1); one alone only if a word."""
    low = set(text.str.lower().unique())
    if len(low) == 1:
        return low <= {"yes", "no", "true", "false"}
    return len(low) == 2 and len(low & _TRUE) == 1 and len(low & _FALSE) == 1


def _calendar(name: str, text: pd.Series) -> tuple[list[str | int], str] | None:
    """Month or weekday categories in natural order (the data's spelling), and which kind."""
    low = text.str.lower()
    uniq = set(low.unique())
    for kind, names in (("month", _MONTHS), ("weekday", _WEEKDAYS)):
        index = {n: i for i, n in enumerate(names)} | {n[:3]: i for i, n in enumerate(names)}
        if kind == "month":
            index["sept"] = 8
        if uniq and uniq <= set(index):
            not_may = low[low != "may"]
            abbreviated = len(not_may) > 0 and _fraction(not_may.str.len() <= 4) > 0.5
            upper = _fraction(text.str.isupper()) > 0.5
            seen = text.groupby(low.map(index)).agg(lambda v: v.value_counts().index[0])
            out: list[str | int] = []
            for i, n in enumerate(names):
                made = n[:3] if abbreviated else n
                out.append(str(seen.get(i, made.upper() if upper else made.title())))
            return out, kind
    if not text.str.fullmatch(r"\d{1,2}").all():
        return None
    nums = text.astype(int)
    padded = _fraction(text.str.fullmatch(r"0\d")) > 0
    if _MONTH_COL.search(name) and nums.between(1, 12).all():
        span = range(1, 13)
    elif _WEEKDAY_COL.search(name) and nums.between(0, 7).all() and not (nums.min() == 0 and nums.max() == 7):
        span = range(7) if nums.min() == 0 else range(1, 8)
    else:
        return None
    return [f"{i:02d}" if padded else i for i in span], "month" if len(span) == 12 else "weekday"


def _parse_dates(text: pd.Series) -> pd.Series | None:
    """Timestamps of text that looks like dates (ISO or common formats), else None."""
    if (
        _fraction(text.str.contains(_DATE_SHAPE)) < 0.98
        or _fraction(pd.to_numeric(text, errors="coerce").notna()) > 0.5
    ):
        return None
    uniq = pd.Series(text.unique())
    try:
        parsed = pd.to_datetime(uniq, errors="coerce", format="mixed")
    except (ValueError, TypeError, OverflowError):  # mixed offsets, or naive and aware mixed
        try:
            parsed = pd.to_datetime(uniq, errors="coerce", format="mixed", utc=True)
        except (ValueError, TypeError, OverflowError):
            return None
    ts = text.map(dict(zip(uniq, parsed, strict=True)))
    if _fraction(ts.notna()) < 0.98:
        return None
    return pd.to_datetime(ts.dropna())


def _granularity(ts: pd.Series) -> str:
    """The finest of second/minute/hour/day at which more than 1% (and 2+) of values vary."""
    def varies(mask: pd.Series) -> bool:
        return int(mask.sum()) >= 2 and _fraction(mask) > 0.01

    t = ts.dt
    if varies((t.second != 0) | (t.microsecond != 0) | (t.nanosecond != 0)):
        return "second"
    if varies(t.minute != 0):
        return "minute"
    return "hour" if varies(t.hour != 0) else "day"


def _numbers(text: pd.Series) -> tuple[pd.Series, bool] | None:
    """Numeric values of the text and whether a unit/currency sign/thousands separator was read."""
    plain = pd.to_numeric(text, errors="coerce")
    if plain.notna().all():
        return plain.astype(float), False
    parts = text.str.extract(_UNIT_NUMBER)
    ok = parts[1].notna()
    affixes = {(p, u.lower()) for p, u in zip(parts[0][ok].fillna(""), parts[2][ok].fillna(""), strict=True)} - {
        ("", "")
    }
    if _fraction(ok) > 0.98 and len(affixes) <= 1:
        return parts[1][ok].str.replace(",", "").astype(float), True
    return (plain.dropna().astype(float), False) if _fraction(plain.notna()) > 0.98 else None


def _natural(key: str) -> tuple[Any, ...]:
    """Sort key putting '2' before '10' and 'Aged 18 to 24' before 'Aged 25 to 34'."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in re.split(r"(\d+)", key) if p)


def _categorical(base: dict[str, Any], keys: pd.Series, *, as_text: bool) -> tuple[dict[str, Any], list[str]]:
    counts = keys.value_counts()
    kept = sorted((str(k) for k, v in counts.items() if v >= MIN_CATEGORY_COUNT), key=_natural)
    rare = int((counts < MIN_CATEGORY_COUNT).sum())
    name = base["name"]
    if not kept:
        return ({**base, "kind": "identifier", "nullable": False},
                [f"{name}: no category is frequent enough to publish; treated as identifier"])
    cats: list[str | int] = list(kept)
    if not as_text and all(re.fullmatch(r"-?[1-9]\d*|0", k) for k in kept):
        cats = [int(k) for k in kept]
    notes = [f"{name}: {rare} rare categories were not copied; they map to (other)"] if rare else []
    return {**base, "kind": "categorical", "categories": cats, "other": rare > 0}, notes


def _draft_datetime(base: dict[str, Any], dt: pd.Series, text: pd.Series | None = None) -> dict[str, Any]:
    lo, hi = datetime_grid_bounds(dt.min(), dt.max())
    spec = {**base, "kind": "datetime", "bounds": [lo.isoformat(), hi.isoformat()], "granularity": _granularity(dt)}
    fmt = _datetime_format(text) if text is not None else None
    return _mark(spec, format=fmt) if fmt else spec


def _datetime_format(text: pd.Series) -> str | None:
    """The first of :data:`_FORMATS` that parses and writes back >= 99% of a sample unchanged."""
    sample = text.drop_duplicates().head(500).str.strip()
    for fmt in _FORMATS:
        parsed = pd.to_datetime(sample, format=fmt, errors="coerce")
        if _fraction(parsed.notna()) >= 0.99 and _fraction(parsed.dt.strftime(fmt) == sample) >= 0.99:
            return fmt
    return None


def _mark(spec: dict[str, Any], **facts: Any) -> dict[str, Any]:
    """``spec`` with ``facts`` added, each marked ``private_inferred`` in ``sources``."""
    inferred = Source.private_inferred.value
    return {**spec, **facts, "sources": {**spec.get("sources", {}), **dict.fromkeys(facts, inferred)}}


def _decimals(text: pd.Series | None, vals: pd.Series) -> int:
    """Digits after the point in the source (its 99.9th percentile, at most 12)."""
    if text is not None:
        digits = text.str.extract(r"\.(\d+)", expand=False).str.len().fillna(0)
    else:
        digits = vals.map(lambda v: len(np.format_float_positional(v, trim="-").partition(".")[2]))
    return int(min(12, np.quantile(digits.to_numpy(dtype=float), 0.999))) if len(digits) else 0


def _step(vals: pd.Series, lo: float, places: int) -> float | None:
    """The common step of all values from ``lo`` when coarser than their precision, else None."""
    scaled = np.round((vals.to_numpy(dtype=float) - lo) * 10.0**places)
    if len(np.unique(scaled)) < 3 or np.abs(scaled).max() > 2**52:
        return None
    g = int(np.gcd.reduce(np.abs(scaled).astype(np.int64)))
    return g / 10**places if g > 1 else None


def _atoms(vals: pd.Series) -> list[int | float]:
    """Point masses: values holding at least :data:`ATOM_SHARE` of the rows, ten times the
    median value's share, and :data:`MIN_CATEGORY_COUNT` rows (a stepped column whose values
    are all common, like wind directions, has none)."""
    counts = vals.value_counts()
    big = counts[(counts >= MIN_CATEGORY_COUNT) & (counts >= ATOM_SHARE * len(vals))
                 & (counts >= 10 * counts.median())]
    return sorted(int(v) if float(v).is_integer() else float(v) for v in big.index)[:16]


def _draft_numeric(base: dict[str, Any], vals: pd.Series, text: pd.Series | None) -> dict[str, Any]:
    lo, hi = grid_bounds(float(vals.min()), float(vals.max()))
    is_int = bool(np.all(np.isclose(vals, np.round(vals))))
    spec: dict[str, Any] = {**base, "kind": "numeric", "dtype": "int" if is_int else "float", "bounds": [lo, hi]}
    if is_int and hi - lo + 1 <= 64:
        return spec
    spec["bins"] = 32
    places = 0 if is_int else _decimals(text, vals)
    step = _step(vals, lo, places)
    facts: dict[str, Any] = {} if is_int else {"decimals": places}
    if step is not None and step <= hi - lo:
        facts["step"] = int(step) if float(step).is_integer() else step
    atoms = _atoms(vals)
    if atoms:
        facts["atoms"] = atoms
    return _mark(spec, **facts) if facts else spec


def _identifier(base: dict[str, Any], why: str) -> tuple[dict[str, Any], list[str]]:
    return {**base, "kind": "identifier", "nullable": False}, [f"{base['name']}: {why}; it will not be modelled"]


def _draft_column(base: dict[str, Any], s: pd.Series) -> tuple[dict[str, Any], list[str]]:
    """One column's draft and its notes (no data values in them)."""
    name = base["name"]
    nonnull = s.dropna()
    dt_note = (f"{name}: datetime bounds were read from the data and widened to whole years or months "
               "(private); declare public bounds")
    if pd.api.types.is_bool_dtype(s):
        return {**base, "kind": "boolean"}, []
    if pd.api.types.is_datetime64_any_dtype(s):
        if not len(nonnull):
            return _identifier(base, "holds no value to draft from")
        return _draft_datetime(base, nonnull), [dt_note]
    keys = nonnull.map(canonical_key).astype(str)
    textual = pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)
    if len(keys) and textual and _pattern_identifier(keys):
        return _identifier(base, "looks like e-mail, phone or SSN values (a direct identifier)")
    if len(keys) and _boolean(keys):
        note = f"{name}: drafted boolean from a two-valued spelling; synthetic output uses the same spelling"
        return {**base, "kind": "boolean"}, [note]
    cal = _calendar(name, keys) if len(keys) else None
    if cal is not None:
        cats, kind = cal
        other = not set(keys.unique()) <= {canonical_key(c) for c in cats}
        return {**base, "kind": "ordinal", "categories": cats, "other": other}, [
            f"{name}: {kind} values drafted as an ordinal column in calendar order"]
    dates = _parse_dates(keys) if len(keys) and textual else None
    if dates is not None and len(dates):
        return _draft_datetime(base, dates, nonnull.astype(str)), [dt_note]
    distinct = keys.nunique() / max(len(keys), 1)
    if _ID_NAME.search(name) and distinct > 0.5:
        return _identifier(base, "has an identifier-like name and mostly distinct values")
    if textual and len(keys) and keys.head(500).str.len().mean() > 40 and distinct > 0.5:
        return _identifier(base, "looks like free text")
    code = textual and len(keys) and (_CODE_COL.search(name) is not None or _fraction(keys.str.fullmatch(r"0\d+")) > 0
                                      or _fraction(keys.str.fullmatch(r"\d{5}-\d{4}")) > 0)
    num = None if code or not len(keys) else _numbers(keys)
    if num is not None and keys.nunique() > 12:
        vals, unit = num
        if distinct == 1.0 and len(keys) >= 20 and bool(np.all(vals == np.round(vals))):
            return _identifier(base, "holds distinct whole numbers (a record number)")
        notes = [(f"{name}: numeric bounds were read from the data and rounded outward to a power of ten "
                  "(private); declare public bounds")]
        if unit:
            notes.append(f"{name}: values carry a unit, currency sign or thousands separator; synthetic output "
                         "is plain numbers")
        return _draft_numeric(base, vals, keys if textual and not unit else None), notes
    if distinct > 0.9 and len(keys) >= 20:
        return _identifier(base, "has nearly unique values")
    spec, notes = _categorical(base, keys, as_text=bool(code) or num is None)
    if code and spec["kind"] == "categorical":
        notes.append(f"{name}: codes kept as text (leading zeros or postal-code shape)")
    return spec, notes


def _draft_spelled(base: dict[str, Any], s: pd.Series) -> tuple[dict[str, Any], list[str]]:
    """One column's draft with the source's spellings: its null token and boolean labels."""
    token = None
    if pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s):
        stripped = s.astype("string").str.strip()
        found = stripped[stripped.isin(_NULL_TOKENS).fillna(False)]
        if len(found):
            token = str(found.value_counts().index[0])
            s = s.mask(stripped.isin(_NULL_TOKENS).fillna(False))
    spec, notes = _draft_column(base, s)
    if token is not None and spec["kind"] != "identifier":
        spec = _mark(spec, null_token=token)
    labels = _boolean_labels(s.dropna()) if spec["kind"] == "boolean" else None
    if labels is not None:
        spec = _mark(spec, true_label=labels[0], false_label=labels[1])
    return spec, notes


def _boolean_labels(s: pd.Series) -> tuple[str, str] | None:
    """The most common spelling of true and of false in text, or None (typed booleans)."""
    if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
        return None
    text = s.astype(str).str.strip()
    low = text.str.lower()
    yes, no = text[low.isin(_TRUE)], text[low.isin(_FALSE)]
    if not len(yes) or not len(no):
        return None
    return str(yes.value_counts().index[0]), str(no.value_counts().index[0])


def draft_schema(df: pd.DataFrame, *, name: str | None = None) -> tuple[Schema, list[str]]:
    """Propose a schema by reading the data. NOT PRIVATE: every derived fact is marked.

    Works on typed frames and on CSV text (``str``/object columns). Detected kinds: dates and
    datetimes (ISO, with ``Z`` or offsets, ``02/09/2018``, ``2018/02/09 13:45``, ``Feb 9 2018``)
    with their granularity (second, minute, hour or day: the finest at which more than 1% of
    the values vary); numbers, including decimals and coordinates, and numbers written with a
    consistent unit, percent or currency sign or thousands separators (``12 kg``, ``$1,200``);
    codes with leading zeros and postal codes as categorical text; booleans spelled
    yes/no, y/n, t/f, true/false or 0/1; month and weekday names or numbers as ordinal columns
    in calendar order; other categories in natural order (``2`` before ``10``).

    No single record's value is copied: numeric bounds are rounded outward to a power-of-ten
    grid (:func:`grid_bounds`), datetime bounds to whole years or months
    (:func:`datetime_grid_bounds`), and every modelled column is drafted ``nullable`` whether
    or not the data hold nulls. Likely direct identifiers (nearly unique text or whole
    numbers; e-mail, phone or SSN-like text; id-like names) and free text become
    ``identifier`` columns, and their values are never copied. Categories seen fewer than
    :data:`MIN_CATEGORY_COUNT` times are not copied either; the column gets an ``other``
    bucket instead (calendar columns list the whole public calendar).

    The source's spellings are drafted too, each fact marked ``private_inferred`` in the
    column's ``sources``: boolean ``true_label``/``false_label``, a ``null_token`` (NA, null,
    ...), the datetime ``format``, a float's ``decimals``, a common ``step`` of the values and
    ``atoms`` (values holding at least :data:`ATOM_SHARE` of the rows of a binned column).

    Returns:
        The schema and a list of human-readable notes (no data values in them).
    """
    notes: list[str] = []
    cols: list[dict[str, Any]] = []
    for col in df.columns:
        spec, col_notes = _draft_spelled({"name": str(col), "nullable": True, "source": "private_inferred"}, df[col])
        cols.append(spec)
        notes.extend(col_notes)
    schema = parse_schema({"name": name, "columns": propose_roles(cols, notes)}, "draft")
    notes.insert(0, "This schema was read off the data and is NOT differentially private: every derived "
                 "fact is marked private_inferred. Replace them with public facts before fitting.")
    notes.insert(1, "every modelled column is drafted nullable (nulls were not looked up); set "
                 "nullable: false where the public definition of the data rules nulls out")
    return schema, notes

