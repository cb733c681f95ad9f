"""Filter, sort and paginate a job's photos in SQL, for the results pages and the API alike.

Filters:
- `class`: the predicted (top) class is this class;
- `score_class`, `min`, `max`: the probability of `score_class` lies in [min, max],
  an indexed join because each class has its own PredictionScore row. Without
  `score_class` the range applies to the top class's probability;
- `status`: the photo's status;
- `low`: low confidence, the top probability is under this threshold.
The pages take probabilities in percent and the API as fractions; `scale` says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Mapping

from flask_babel import gettext as _
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from pandulce.db import BatchJob, Photo, PhotoStatus, Prediction, PredictionScore
from pandulce.jobs import prediction_map
from web.messages import WebError

SORTS = ("position", "name", "probability_desc", "probability_asc", "score_desc", "status")
STATUSES = tuple(status.value for status in PhotoStatus)


@dataclass(frozen=True)
class ResultFilter:
    top_class: str | None = None
    score_class: str | None = None
    min_probability: float | None = None
    max_probability: float | None = None
    status: str | None = None
    low_confidence: float | None = None
    sort: str = "position"
    page: int = 1
    per_page: int = 48

    def active(self) -> bool:
        """Tell whether any filter narrows the photos."""
        return any(value is not None for value in (self.top_class, self.score_class, self.min_probability,
                                                   self.max_probability, self.status, self.low_confidence))


@dataclass
class ResultPage:
    photos: list[dict]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def parse_filter(args: Mapping[str, str], classes: list[str], scale: float, default_per_page: int,
                 max_per_page: int) -> ResultFilter:
    """Read the filter from query arguments; raise WebError bad_filter naming the first invalid one.

    `scale` is 100 when probabilities are given in percent, 1 when as fractions.
    """
    top_class = _choice(args, "class", classes)
    score_class = _choice(args, "score_class", classes)
    status = _choice(args, "status", STATUSES)
    sort = _choice(args, "sort", SORTS) or "position"
    low = _probability(args, "low", scale)
    minimum = _probability(args, "min", scale)
    maximum = _probability(args, "max", scale)
    page = _whole_number(args, "page", 1, 1_000_000) or 1
    per_page = _whole_number(args, "per_page", 1, max_per_page) or default_per_page

    if minimum is not None and maximum is not None and minimum > maximum:
        raise WebError("bad_filter", 400, _("The minimum probability is above the maximum."))
    if sort == "score_desc" and score_class is None:
        sort = "probability_desc"
    return ResultFilter(top_class, score_class, minimum, maximum, status, low, sort, page, per_page)


def _choice(args: Mapping[str, str], key: str, allowed) -> str | None:
    value = (args.get(key) or "").strip()
    if not value:
        return None
    if value not in allowed:
        raise WebError("bad_filter", 400, _("%(value)s is not a valid value for %(key)s; use one of: %(allowed)s.",
                                            value=value[:64], key=key, allowed=", ".join(allowed)))
    return value


def _probability(args: Mapping[str, str], key: str, scale: float) -> float | None:
    raw = (args.get(key) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw.replace(",", "."))
    except ValueError:
        value = math.nan
    if not 0 <= value <= scale:
        raise WebError("bad_filter", 400, _("%(key)s must be a number from 0 to %(top)s, not %(value)s.",
                                            key=key, top=f"{scale:g}", value=raw[:32]))
    return value / scale


def _whole_number(args: Mapping[str, str], key: str, low: int, high: int) -> int | None:
    raw = (args.get(key) or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise WebError("bad_filter", 400, _("%(key)s must be a whole number from %(low)s to %(high)s, not "
                                            "%(value)s.", key=key, low=low, high=high, value=raw[:32]))
    return int(raw)


def query_results(session: Session, job: BatchJob, result_filter: ResultFilter) -> ResultPage:
    """Return one page of a job's photos that pass the filter, with every class's probability."""
    prediction_join = and_(Prediction.photo_id == Photo.id, Prediction.model_version_id == job.model_version_id)
    query = (select(Photo, Prediction.top_class, Prediction.top_probability)
             .outerjoin(Prediction, prediction_join)
             .where(Photo.job_id == job.id))
    score_probability = None
    if result_filter.score_class is not None:
        query = query.join(PredictionScore, and_(PredictionScore.prediction_id == Prediction.id,
                                                 PredictionScore.class_name == result_filter.score_class))
        score_probability = PredictionScore.probability
    ranged = score_probability if score_probability is not None else Prediction.top_probability

    if result_filter.top_class is not None:
        query = query.where(Prediction.top_class == result_filter.top_class)
    if result_filter.min_probability is not None:
        query = query.where(ranged >= result_filter.min_probability)
    if result_filter.max_probability is not None:
        query = query.where(ranged <= result_filter.max_probability)
    if result_filter.status is not None:
        query = query.where(Photo.status == PhotoStatus(result_filter.status))
    if result_filter.low_confidence is not None:
        query = query.where(Prediction.top_probability < result_filter.low_confidence)

    total = session.scalar(select(func.count()).select_from(query.with_only_columns(Photo.id).subquery()))
    page = min(result_filter.page, max(1, math.ceil(total / result_filter.per_page)))
    rows = session.execute(query.order_by(*_order(result_filter.sort, score_probability))
                           .limit(result_filter.per_page).offset((page - 1) * result_filter.per_page)).all()
    probabilities = prediction_map(session, [row.Photo.id for row in rows], job.model_version_id)
    photos = [photo_summary(row.Photo, row.top_class, row.top_probability, probabilities.get(row.Photo.id))
              for row in rows]
    return ResultPage(photos, total, page, result_filter.per_page)


def _order(sort: str, score_probability):
    unclassified_last = Prediction.top_probability.is_(None)
    if sort == "name":
        return [Photo.original_name, Photo.position]
    if sort == "probability_desc":
        return [unclassified_last, Prediction.top_probability.desc(), Photo.position]
    if sort == "probability_asc":
        return [unclassified_last, Prediction.top_probability.asc(), Photo.position]
    if sort == "score_desc" and score_probability is not None:
        return [score_probability.desc(), Photo.position]
    if sort == "status":
        return [Photo.status, Photo.position]
    return [Photo.position]


def photo_summary(photo: Photo, top_class: str | None, top_probability: float | None,
                  prediction: dict | None) -> dict:
    """Return what a results row shows of one photo."""
    return {
        "id": photo.id,
        "position": photo.position,
        "name": photo.original_name,
        "status": photo.status.value,
        "error_code": photo.error_code,
        "error": photo.error,
        "sha256": photo.sha256,
        "width": photo.width,
        "height": photo.height,
        "byte_size": photo.byte_size,
        "has_file": photo.stored_path is not None,
        "top_class": top_class,
        "top_probability": top_probability,
        "probabilities": prediction["probabilities"] if prediction else None,
    }


def with_page(result_filter: ResultFilter, page: int) -> ResultFilter:
    return replace(result_filter, page=page)
