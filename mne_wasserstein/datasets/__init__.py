"""Offline template brain and synthetic multi-subject cohorts (no download)."""

from ._cohort import Cohort, make_cohort
from ._diversity import LeadfieldDiversity, leadfield_diversity
from ._template import TEMPLATE, make_template

__all__ = [
    "Cohort",
    "LeadfieldDiversity",
    "TEMPLATE",
    "leadfield_diversity",
    "make_cohort",
    "make_template",
]
