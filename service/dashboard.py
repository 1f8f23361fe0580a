"""What the dashboard shows beyond the model history: labels by count and the queue over time.

The queue's history is derived from the review items themselves (when each was created, and when
it last changed status), so it needs no extra bookkeeping and agrees across replicas: an item
counts as pending from its ``created_at`` until its ``updated_at`` once it has left the queue. An
item annotated again later (a label correction) moves its ``updated_at`` on, so it counts as
pending a little too long; the queue depth is exact for items reviewed once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import func as sql
from sqlalchemy import or_
from sqlmodel import Session, col, select

from service.functions import get_function
from service.runtime import Runtime
from service.schemas import ActivityHour, DashboardPublic, LabelCount, ModelVersionPublic
from store import Label, ModelVersion, ReviewItem, Sample, as_utc, utcnow

# Invokes, invokes scored for novelty and novel invokes per hour (POSIX start of the hour ->
# counts), as the serving process counted them (:class:`capture.drift.NoveltyTraffic`).
Traffic = dict[int, tuple[int, int, int]]


def traffic_of(rt: Runtime, function_id: str, *, hours: int) -> Traffic:
    """The function's invokes, scored invokes and novel invokes per hour, as this process
    counted them."""
    return {
        h.start: (h.invokes, h.scored, h.novel)
        for h in rt.novel_traffic.hours(function_id, last=hours)
    }


def dashboard(
    session: Session,
    function_id: str,
    *,
    hours: int,
    traffic: Traffic | None = None,
    now: datetime | None = None,
) -> DashboardPublic:
    """Label counts and ``hours`` hourly activity buckets ending with the current hour."""
    get_function(session, function_id)
    counts, unlabelled = label_counts(session, function_id)
    return DashboardPublic(
        label_counts=counts,
        unlabelled_samples=unlabelled,
        activity=activity(session, function_id, hours=hours, traffic=traffic, now=now),
    )


def label_counts(session: Session, function_id: str) -> tuple[list[LabelCount], int]:
    """Labelled samples per label (labels without samples count 0), most first; and the
    number of samples without a label."""
    per_label = session.exec(
        select(Label.name, sql.count(col(Sample.id)))
        .join(Sample, col(Sample.label_id) == col(Label.id), isouter=True)
        .where(Label.function_id == function_id)
        .group_by(col(Label.id), col(Label.name))
    ).all()
    unlabelled = session.exec(
        select(sql.count(col(Sample.id))).where(
            Sample.function_id == function_id, col(Sample.label_id).is_(None)
        )
    ).one()
    ranked = sorted(per_label, key=lambda row: (-int(row[1]), str(row[0])))
    return [LabelCount(label_name=name, count=int(n)) for name, n in ranked], int(unlabelled)


def activity(
    session: Session,
    function_id: str,
    *,
    hours: int,
    traffic: Traffic | None = None,
    now: datetime | None = None,
) -> list[ActivityHour]:
    """Per hour, oldest first: invoke inputs captured, items (of any kind) that left the queue,
    the queue depth at the hour's end (at ``now`` for the current hour), and from ``traffic``
    the invokes, scored and novel invokes and the capture rate (captured / invokes)."""
    traffic = traffic or {}
    now = as_utc(now or utcnow())
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    rows = session.exec(
        select(
            ReviewItem.created_at, ReviewItem.updated_at, ReviewItem.status, ReviewItem.kind
        ).where(
            ReviewItem.function_id == function_id,
            or_(col(ReviewItem.status) == "pending", col(ReviewItem.updated_at) >= first),
        )
    ).all()
    created = np.array([as_utc(row[0]).timestamp() for row in rows], dtype=np.float64)
    # when each item left the queue; +inf while it is still pending
    left = np.array(
        [np.inf if row[2] == "pending" else as_utc(row[1]).timestamp() for row in rows],
        dtype=np.float64,
    )
    is_capture = np.array([row[3] == "capture" for row in rows], dtype=bool)
    starts = [first + timedelta(hours=h) for h in range(hours)]
    result = []
    for start in starts:
        begin = start.timestamp()
        end = min(begin + 3600.0, now.timestamp())
        captured = int(
            np.count_nonzero(is_capture & (created >= begin) & (created < begin + 3600.0))
        )
        invokes, scored, novel = traffic.get(int(begin), (0, 0, 0))
        result.append(
            ActivityHour(
                hour=start,
                captured=captured,
                invokes=invokes,
                scored=scored,
                novel=novel,
                capture_rate=captured / invokes if invokes and captured <= invokes else None,
                resolved=int(np.count_nonzero((left >= begin) & (left < begin + 3600.0))),
                queue_depth=int(np.count_nonzero((created <= end) & (left > end))),
            )
        )
    return result


def model_versions(session: Session, function_id: str) -> list[ModelVersionPublic]:
    """Every trained version of the function, oldest first."""
    get_function(session, function_id)
    rows = session.exec(
        select(ModelVersion)
        .where(ModelVersion.function_id == function_id)
        .order_by(col(ModelVersion.version))
    ).all()
    return [ModelVersionPublic.model_validate(row, from_attributes=True) for row in rows]
