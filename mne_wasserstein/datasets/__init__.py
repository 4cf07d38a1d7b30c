"""Offline template brain and synthetic multi-subject cohorts (no download)."""

from ._cohort import Cohort, make_cohort
from ._template import TEMPLATE, make_template

__all__ = ["Cohort", "TEMPLATE", "make_cohort", "make_template"]
