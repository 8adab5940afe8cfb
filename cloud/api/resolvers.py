"""Typed forms of Strawberry's resolver decorators, shared by every schema module.

Strawberry's own decorators are untyped for mypy; these keep each resolver's signature, so a
resolver stays type-checked. Names are camel-cased in the schema (get_risk_assessment ->
getRiskAssessment).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import strawberry
from graphql import GraphQLError

F = TypeVar("F", bound=Callable[..., Any])


def field(description: str | None = None) -> Callable[[F], F]:
    return cast("Callable[[F], F]", strawberry.field(description=description))


def mutation(description: str | None = None) -> Callable[[F], F]:
    return cast("Callable[[F], F]", strawberry.mutation(description=description))


def subscription(description: str | None = None) -> Callable[[F], F]:
    return cast("Callable[[F], F]", strawberry.subscription(description=description))


def not_available(operation: str) -> GraphQLError:
    return GraphQLError(f"{operation} is not available yet", extensions={"code": "NOT_AVAILABLE"})


def bad_input(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})
