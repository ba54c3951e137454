"""Transitional: the launcher is brokerlab.backstage now (`python -m brokerlab.backstage`).

Lesson 03.01 still reads `is_managed` and `paths` from here; once it switches, this file
goes.
"""
# transitional

from __future__ import annotations

from brokerlab.backstage import single
from brokerlab.backstage.process import Place
from brokerlab.backstage.single import is_managed
from brokerlab.settings import Settings, get_settings

__all__ = ["is_managed", "paths"]


def paths(broker: str, settings: Settings | None = None) -> Place:
    return single.place(broker, settings or get_settings())
